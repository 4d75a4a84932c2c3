//! Call billing at a rate per second, in exact decimal money: pure logic
//! (tariffs, the prefix table, the bill, the CDR). The script functions that
//! use it are in `crate::billing_functions`.

pub mod call;
pub mod journal;
pub mod rates;
pub mod tariff;

use rates::RateTable;
use std::path::PathBuf;
use tariff::Tariff;

/// Where CDRs go (`billing_cdr`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CdrSink {
    /// Only the log line.
    #[default]
    LogOnly,
    /// `file:<path>`: one JSON object per line, appended.
    File(PathBuf),
    /// `redis:<stream key>`: XADD to a Redis stream (Redis storage only).
    RedisStream(String),
}

impl CdrSink {
    pub fn parse(s: &str) -> Result<CdrSink, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(CdrSink::LogOnly);
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("\"file:\" needs a path, e.g. file:/var/log/kamailio/cdr.jsonl".into());
            }
            return Ok(CdrSink::File(PathBuf::from(path)));
        }
        if let Some(key) = s.strip_prefix("redis:") {
            if key.is_empty() {
                return Err("\"redis:\" needs a stream key, e.g. redis:topos_rs:cdr".into());
            }
            return Ok(CdrSink::RedisStream(key.to_string()));
        }
        Err(format!(
            "{s:?} is none of \"\" (log only), file:<path>, redis:<stream key>"
        ))
    }
}

/// The billing part of the module configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingConfig {
    /// Used for callee numbers no prefix of the rates table matches.
    pub default: Tariff,
    pub currency: String,
    pub decimals: u32,
    pub rates_file: Option<PathBuf>,
    pub rates: RateTable,
    pub cdr: CdrSink,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            default: Tariff::default(),
            currency: "元".to_string(),
            decimals: 2,
            rates_file: None,
            rates: RateTable::default(),
            cdr: CdrSink::LogOnly,
        }
    }
}

impl BillingConfig {
    pub fn tariff_for(&self, callee: &str) -> &Tariff {
        self.rates.lookup(callee).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdr_sinks() {
        assert_eq!(CdrSink::parse("").unwrap(), CdrSink::LogOnly);
        assert_eq!(
            CdrSink::parse("file:/var/log/cdr.jsonl").unwrap(),
            CdrSink::File("/var/log/cdr.jsonl".into())
        );
        assert_eq!(
            CdrSink::parse("redis:topos_rs:cdr").unwrap(),
            CdrSink::RedisStream("topos_rs:cdr".into())
        );
        for bad in ["file:", "redis:", "syslog", "http://x"] {
            assert!(CdrSink::parse(bad).is_err(), "{bad}");
        }
    }
}
