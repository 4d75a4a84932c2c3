//! What a call costs: the increment rule and exact decimal money.
//!
//! Billed seconds for a call of `d` whole seconds under increment
//! `first/next`: 0 if `d` is 0, else `first + ceil(max(0, d - first) / next)
//! * next`. Cost = connect fee + billed seconds x rate, rounded half-up
//! (away from zero) to the configured number of decimals. Money is
//! `rust_decimal::Decimal` end to end: no binary floating point anywhere.

use rust_decimal::{Decimal, RoundingStrategy};
use std::fmt;
use std::str::FromStr;

/// `first/next` seconds: the first `first` seconds are billed as a block,
/// then blocks of `next` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Increment {
    pub first: u64,
    pub next: u64,
}

impl Default for Increment {
    fn default() -> Self {
        Increment { first: 1, next: 1 }
    }
}

impl fmt::Display for Increment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.first, self.next)
    }
}

impl FromStr for Increment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("increment {s:?} is not first/next, e.g. 60/60"))?;
        let num = |t: &str| -> Result<u64, String> {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("increment {s:?}: {t:?} is not a whole number of seconds"))
        };
        let (first, next) = (num(a)?, num(b)?);
        if next == 0 {
            return Err(format!(
                "increment {s:?}: the next block must be at least 1 second"
            ));
        }
        if first > 86_400 || next > 86_400 {
            return Err(format!(
                "increment {s:?}: blocks are limited to 86400 seconds"
            ));
        }
        Ok(Increment { first, next })
    }
}

impl Increment {
    /// Seconds billed for a call of `duration` whole seconds.
    pub fn billed_seconds(&self, duration: u64) -> u64 {
        if duration == 0 {
            return 0;
        }
        let rest = duration.saturating_sub(self.first);
        let blocks = rest.div_ceil(self.next);
        self.first.saturating_add(blocks.saturating_mul(self.next))
    }
}

/// A non-negative amount of money written as a plain decimal ("0.05").
pub fn parse_money(what: &str, s: &str) -> Result<Decimal, String> {
    let t = s.trim();
    let ok = !t.is_empty()
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().filter(|&b| b == b'.').count() <= 1;
    let d = if ok {
        Decimal::from_str_exact(t).ok()
    } else {
        None
    };
    d.ok_or_else(|| format!("{what} {s:?} is not a non-negative decimal number like 0.05"))
}

/// The price list of one destination (or the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    /// Per second.
    pub rate: Decimal,
    pub increment: Increment,
    pub connect_fee: Decimal,
}

impl Default for Tariff {
    fn default() -> Self {
        Tariff {
            rate: Decimal::new(5, 2),
            increment: Increment::default(),
            connect_fee: Decimal::ZERO,
        }
    }
}

/// One priced call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub duration: u64,
    pub billed_seconds: u64,
    pub cost: Decimal,
}

impl Tariff {
    /// The charge for `duration` whole seconds, rounded half-up to
    /// `decimals` places.
    pub fn charge(&self, duration: u64, decimals: u32) -> Charge {
        let billed = self.increment.billed_seconds(duration);
        let raw = self.connect_fee + Decimal::from(billed) * self.rate;
        Charge {
            duration,
            billed_seconds: billed,
            cost: raw.round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero),
        }
    }
}

/// `cost` with exactly `decimals` places ("6.00", "0.10", "3").
pub fn format_money(cost: Decimal, decimals: u32) -> String {
    format!("{:.*}", decimals as usize, cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> Decimal {
        parse_money("test", s).unwrap()
    }

    fn cost(rate: &str, inc: &str, fee: &str, d: u64) -> String {
        let t = Tariff {
            rate: money(rate),
            increment: inc.parse().unwrap(),
            connect_fee: money(fee),
        };
        format_money(t.charge(d, 2).cost, 2)
    }

    #[test]
    fn golden_billed_seconds() {
        // duration: 0, 1, 59, 60, 61, 120
        let cases = [
            ("1/1", [0, 1, 59, 60, 61, 120]),
            ("60/60", [0, 60, 60, 60, 120, 120]),
            ("30/6", [0, 30, 60, 60, 66, 120]),
            ("60/1", [0, 60, 60, 60, 61, 120]),
        ];
        for (inc, expected) in cases {
            let i: Increment = inc.parse().unwrap();
            let got: Vec<u64> = [0, 1, 59, 60, 61, 120]
                .iter()
                .map(|&d| i.billed_seconds(d))
                .collect();
            assert_eq!(got, expected, "increment {inc}");
        }
    }

    #[test]
    fn golden_costs_at_the_default_rate() {
        let at = |inc: &str| -> Vec<String> {
            [0, 1, 59, 60, 61, 120]
                .iter()
                .map(|&d| cost("0.05", inc, "0", d))
                .collect()
        };
        assert_eq!(at("1/1"), ["0.00", "0.05", "2.95", "3.00", "3.05", "6.00"]);
        assert_eq!(
            at("60/60"),
            ["0.00", "3.00", "3.00", "3.00", "6.00", "6.00"]
        );
        assert_eq!(at("30/6"), ["0.00", "1.50", "3.00", "3.00", "3.30", "6.00"]);
        assert_eq!(at("60/1"), ["0.00", "3.00", "3.00", "3.00", "3.05", "6.00"]);
    }

    #[test]
    fn requirement_example_120_seconds_costs_6() {
        assert_eq!(cost("0.05", "1/1", "0", 120), "6.00");
    }

    #[test]
    fn connect_fee_is_added() {
        assert_eq!(cost("0.05", "1/1", "0.20", 0), "0.20");
        assert_eq!(cost("0.05", "1/1", "0.20", 60), "3.20");
        assert_eq!(cost("0.05", "60/60", "0.15", 61), "6.15");
    }

    #[test]
    fn exact_decimal_half_up_not_binary_float() {
        // 1.005 as an f64 is 1.00499999999999989..., which rounds to 1.00.
        assert_eq!(cost("1.005", "1/1", "0", 1), "1.01");
        assert_eq!(cost("0.125", "1/1", "0", 1), "0.13");
        assert_eq!(cost("0.0001", "1/1", "0", 49), "0.00");
        assert_eq!(cost("0.0001", "1/1", "0", 50), "0.01");
    }

    #[test]
    fn decimals_are_exactly_as_configured() {
        let t = Tariff::default();
        assert_eq!(format_money(t.charge(120, 0).cost, 0), "6");
        assert_eq!(format_money(t.charge(1, 1).cost, 1), "0.1");
        assert_eq!(format_money(t.charge(120, 4).cost, 4), "6.0000");
    }

    #[test]
    fn long_calls_do_not_overflow() {
        let t = Tariff::default();
        let c = t.charge(10 * 365 * 86_400, 2);
        assert_eq!(format_money(c.cost, 2), "15768000.00");
    }

    #[test]
    fn bad_increments_and_amounts() {
        for bad in ["", "60", "a/b", "60/0", "-1/1", "1/99999999"] {
            assert!(bad.parse::<Increment>().is_err(), "{bad}");
        }
        for bad in ["", "-0.05", "1e3", "0,05", "abc", "1.2.3", " "] {
            assert!(parse_money("rate", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_money("rate", " 0.050 ").unwrap(), Decimal::new(50, 3));
    }
}
