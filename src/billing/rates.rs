//! The prefix rate table (`billing_rates_file`): a CSV file with one
//! destination per line, `prefix,rate per second,increment,connect fee`.
//! The longest prefix of the callee number wins; a number no prefix matches
//! is billed at the defaults. Blank lines and lines starting with `#` are
//! ignored; a first line starting with `prefix` is a header. Empty increment
//! or connect fee columns take the defaults. Any other malformed line is an
//! error naming the file and the line.

use super::tariff::{parse_money, Increment, Tariff};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatesError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RatesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "rates file {}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "rates file {} line {}: {}",
                self.file, self.line, self.message
            )
        }
    }
}

impl std::error::Error for RatesError {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateTable {
    by_prefix: HashMap<String, Tariff>,
    longest: usize,
}

impl RateTable {
    pub fn load(path: &Path, defaults: &Tariff) -> Result<RateTable, RatesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RatesError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&path.display().to_string(), &text, defaults)
    }

    pub fn parse(file: &str, text: &str, defaults: &Tariff) -> Result<RateTable, RatesError> {
        let mut table = RateTable::default();
        let mut seen_data = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let err = |message: String| RatesError {
                file: file.to_string(),
                line: i + 1,
                message,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !seen_data && line.to_ascii_lowercase().starts_with("prefix") {
                seen_data = true;
                continue;
            }
            seen_data = true;
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if cols.len() < 2 || cols.len() > 4 {
                return Err(err(format!(
                    "expected prefix,rate[,increment[,connect fee]], got {} columns",
                    cols.len()
                )));
            }
            let prefix = cols[0];
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("prefix {prefix:?} is not a number")));
            }
            let rate = parse_money("rate", cols[1]).map_err(err)?;
            let increment = match cols.get(2).copied() {
                None | Some("") => defaults.increment,
                Some(s) => s.parse::<Increment>().map_err(err)?,
            };
            let connect_fee = match cols.get(3).copied() {
                None | Some("") => defaults.connect_fee,
                Some(s) => parse_money("connect fee", s).map_err(err)?,
            };
            if table.by_prefix.contains_key(prefix) {
                return Err(err(format!("prefix {prefix} is listed twice")));
            }
            table.longest = table.longest.max(prefix.len());
            table.by_prefix.insert(
                prefix.to_string(),
                Tariff {
                    rate,
                    increment,
                    connect_fee,
                },
            );
        }
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// The tariff of the longest prefix of `number`, if any.
    pub fn lookup(&self, number: &str) -> Option<&Tariff> {
        let max = self.longest.min(number.len());
        (1..=max)
            .rev()
            .filter(|&n| number.is_char_boundary(n))
            .find_map(|n| self.by_prefix.get(&number[..n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    const CSV: &str = "prefix,rate,increment,connect_fee
# China mobile
135,0.10,60/60,0.20
1354,0.08,30/6,
13545,0.07
+44,0.30,1/1,0.05

";

    #[test]
    fn longest_prefix_wins() {
        let t = RateTable::parse("rates.csv", CSV, &Tariff::default()).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.lookup("13545769997").unwrap().rate, Decimal::new(7, 2));
        assert_eq!(t.lookup("13541111111").unwrap().rate, Decimal::new(8, 2));
        assert_eq!(
            t.lookup("13541111111").unwrap().increment.to_string(),
            "30/6"
        );
        assert_eq!(
            t.lookup("13500000000").unwrap().connect_fee,
            Decimal::new(20, 2)
        );
        assert_eq!(t.lookup("+447700900000").unwrap().rate, Decimal::new(30, 2));
        assert!(t.lookup("01089672389").is_none());
        assert!(t.lookup("").is_none());
        assert!(t.lookup("é135").is_none());
    }

    #[test]
    fn empty_columns_take_the_defaults() {
        let defaults = Tariff {
            increment: "60/60".parse().unwrap(),
            connect_fee: Decimal::new(1, 1),
            ..Tariff::default()
        };
        let t = RateTable::parse("r", "13545,0.07\n1354,0.08,,\n", &defaults).unwrap();
        let x = t.lookup("13545").unwrap();
        assert_eq!(x.increment, defaults.increment);
        assert_eq!(x.connect_fee, defaults.connect_fee);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let cases = [
            ("135,0.1\nabc,0.1\n", 2, "prefix \"abc\" is not a number"),
            (
                "135\n",
                1,
                "expected prefix,rate[,increment[,connect fee]], got 1 columns",
            ),
            ("135,-1\n", 1, "rate \"-1\" is not a non-negative decimal"),
            ("135,0.1,60\n", 1, "increment \"60\" is not first/next"),
            ("135,0.1,1/1,x\n", 1, "connect fee \"x\" is not"),
            ("135,0.1\n135,0.2\n", 2, "prefix 135 is listed twice"),
            ("# c\n\n135,0.1,1/1,0,9\n", 3, "got 5 columns"),
        ];
        for (text, line, msg) in cases {
            let e =
                RateTable::parse("/etc/kamailio/rates.csv", text, &Tariff::default()).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("rates file /etc/kamailio/rates.csv line {line}: ")),
                "{shown}"
            );
            assert!(shown.contains(msg), "{shown}");
        }
    }

    #[test]
    fn missing_file_is_an_error() {
        let e =
            RateTable::load(Path::new("/nonexistent/rates.csv"), &Tariff::default()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("rates file /nonexistent/rates.csv: cannot read"),
            "{e}"
        );
    }
}
