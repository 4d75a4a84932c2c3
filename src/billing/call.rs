//! One call's billing: the record kept from answer to hang-up, and the bill
//! (the required log line and the CDR) computed from it.

use super::tariff::{format_money, Charge, Tariff};
use super::BillingConfig;
use crate::log_text::one_line;
use crate::store::key::{call_digest_hex, dialog_key};
use crate::store::record::{Record, RecordError, RecordWriter};

const TAG_ANSWER_MS: u8 = 1;
const TAG_FROM: u8 = 2;
const TAG_TO: u8 = 3;

/// What `billing_start()` stores for an answered call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRecord {
    /// Wall-clock milliseconds of the first 2xx.
    pub answer_ms: u64,
    /// From user (the caller) and To user (the callee) of the INVITE.
    pub from_user: String,
    pub to_user: String,
}

impl AnswerRecord {
    pub fn encode(&self) -> Vec<u8> {
        RecordWriter::new()
            .u64(TAG_ANSWER_MS, self.answer_ms)
            .bytes(TAG_FROM, self.from_user.as_bytes())
            .bytes(TAG_TO, self.to_user.as_bytes())
            .finish()
    }

    pub fn decode(data: &[u8]) -> Result<AnswerRecord, RecordError> {
        let r = Record::parse(data)?;
        Ok(AnswerRecord {
            answer_ms: r.u64(TAG_ANSWER_MS)?,
            from_user: r.str(TAG_FROM)?.to_string(),
            to_user: r.str(TAG_TO)?.to_string(),
        })
    }
}

/// The store key of a call's billing record: a digest of the Call-ID and
/// the caller's tag (the From-tag of the INVITE), so the key has the same
/// size whatever a peer sends (a 2,000-byte Call-ID is billed like any
/// other; LMDB keys are bounded). SHA-256 keeps two calls from sharing a
/// key: a peer cannot choose a Call-ID that lands on another call's bill.
pub fn billing_key(call_id: &[u8], caller_tag: &[u8]) -> Vec<u8> {
    dialog_key("bill", call_id, &call_digest_hex(call_id, caller_tag))
}

/// Longest From / To user kept in a billing record (longer ones are cut on
/// a character boundary): a record's size does not depend on a peer.
pub const MAX_USER: usize = 128;

/// `user` cut to at most `MAX_USER` bytes.
pub fn bounded_user(user: &str) -> String {
    let mut end = user.len().min(MAX_USER);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    user[..end].to_string()
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HungUpBy {
    Caller,
    Callee,
    /// Kamailio itself (dialog module timeout, dlg.end_dlg, a BYE of
    /// event_route[tm:local-request]).
    Kamailio,
}

impl HungUpBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HungUpBy::Caller => "caller",
            HungUpBy::Callee => "callee",
            HungUpBy::Kamailio => "kamailio",
        }
    }

    /// The value `as_str` gave.
    pub fn parse(s: &str) -> Option<HungUpBy> {
        [HungUpBy::Caller, HungUpBy::Callee, HungUpBy::Kamailio]
            .into_iter()
            .find(|h| h.as_str() == s)
    }
}

/// A billed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub call_id: String,
    pub record: AnswerRecord,
    pub end_ms: u64,
    pub tariff: Tariff,
    pub charge: Charge,
    pub currency: String,
    pub decimals: u32,
    pub hangup: HungUpBy,
    /// Kamailio's server_id of the node that billed.
    pub node: i64,
}

impl Bill {
    /// Prices the call at the tariff of its callee number.
    pub fn new(
        cfg: &BillingConfig,
        call_id: &str,
        record: AnswerRecord,
        end_ms: u64,
        hangup: HungUpBy,
        node: i64,
    ) -> Bill {
        // Whole seconds from answer to BYE, rounded down.
        let duration = end_ms.saturating_sub(record.answer_ms) / 1000;
        let tariff = cfg.tariff_for(&record.to_user).clone();
        Bill {
            call_id: call_id.to_string(),
            charge: tariff.charge(duration, cfg.decimals),
            record,
            end_ms,
            tariff,
            currency: cfg.currency.clone(),
            decimals: cfg.decimals,
            hangup,
            node,
        }
    }

    pub fn cost_text(&self) -> String {
        format_money(self.charge.cost, self.decimals)
    }

    /// The line the requirement fixes, word for word.
    pub fn log_line(&self) -> String {
        format!(
            "CALL BILLING - Call-ID: {}, From: {}, To: {}, Duration: {} sec, Cost: {} {}",
            one_line(&self.call_id),
            one_line(&self.record.from_user),
            one_line(&self.record.to_user),
            self.charge.duration,
            self.cost_text(),
            self.currency
        )
    }

    /// The machine-readable CDR: one JSON object, no line breaks. Money is
    /// given as decimal strings, exactly as billed.
    pub fn cdr_json(&self) -> String {
        serde_json::json!({
            "call_id": self.call_id,
            "from": self.record.from_user,
            "to": self.record.to_user,
            "answer_time_ms": self.record.answer_ms,
            "end_time_ms": self.end_ms,
            "duration": self.charge.duration,
            "billed_seconds": self.charge.billed_seconds,
            "rate": self.tariff.rate.to_string(),
            "increment": self.tariff.increment.to_string(),
            "connect_fee": self.tariff.connect_fee.to_string(),
            "currency": self.currency,
            "cost": self.cost_text(),
            "hangup": self.hangup.as_str(),
            "node": self.node,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BillingConfig {
        BillingConfig::default()
    }

    fn record() -> AnswerRecord {
        AnswerRecord {
            answer_ms: 1_700_000_000_000,
            from_user: "01089672389".into(),
            to_user: "13545769997".into(),
        }
    }

    #[test]
    fn requirement_log_line() {
        let b = Bill::new(
            &cfg(),
            "c12345abcd",
            record(),
            1_700_000_120_999,
            HungUpBy::Caller,
            0,
        );
        assert_eq!(
            b.log_line(),
            "CALL BILLING - Call-ID: c12345abcd, From: 01089672389, To: 13545769997, Duration: 120 sec, Cost: 6.00 元"
        );
    }

    #[test]
    fn cdr_has_every_field() {
        let b = Bill::new(
            &cfg(),
            "c1",
            record(),
            1_700_000_002_500,
            HungUpBy::Callee,
            7,
        );
        let v: serde_json::Value = serde_json::from_str(&b.cdr_json()).unwrap();
        assert_eq!(v["call_id"], "c1");
        assert_eq!(v["from"], "01089672389");
        assert_eq!(v["to"], "13545769997");
        assert_eq!(v["answer_time_ms"], 1_700_000_000_000u64);
        assert_eq!(v["end_time_ms"], 1_700_000_002_500u64);
        assert_eq!(v["duration"], 2);
        assert_eq!(v["billed_seconds"], 2);
        assert_eq!(v["rate"], "0.05");
        assert_eq!(v["increment"], "1/1");
        assert_eq!(v["connect_fee"], "0");
        assert_eq!(v["currency"], "元");
        assert_eq!(v["cost"], "0.10");
        assert_eq!(v["hangup"], "callee");
        assert_eq!(v["node"], 7);
        assert!(!b.cdr_json().contains('\n'));
    }

    #[test]
    fn clock_going_backwards_bills_zero() {
        let b = Bill::new(
            &cfg(),
            "c",
            record(),
            1_600_000_000_000,
            HungUpBy::Caller,
            0,
        );
        assert_eq!(b.charge.duration, 0);
        assert_eq!(b.cost_text(), "0.00");
    }

    #[test]
    fn control_characters_never_break_the_log_line() {
        let mut r = record();
        r.from_user = "evil\r\nCALL BILLING - fake".into();
        let b = Bill::new(&cfg(), "c\n1", r, 1_700_000_001_000, HungUpBy::Caller, 0);
        assert!(!b.log_line().contains('\n') && !b.log_line().contains('\r'));
        assert!(b
            .log_line()
            .starts_with("CALL BILLING - Call-ID: c?1, From: evil??CALL"));
    }

    #[test]
    fn record_round_trip_and_v1_bytes() {
        let r = record();
        assert_eq!(AnswerRecord::decode(&r.encode()).unwrap(), r);
        // As format 1 stores it: must stay readable by later versions.
        let v1 = [
            1u8, 1, 8, 0, 104, 229, 207, 139, 1, 0, 0, 2, 1, b'a', 3, 1, b'b',
        ];
        let d = AnswerRecord::decode(&v1).unwrap();
        assert_eq!(
            (d.answer_ms, d.from_user.as_str(), d.to_user.as_str()),
            (1_700_000_000_000, "a", "b")
        );
    }

    #[test]
    fn key_is_per_dialog_and_shares_the_call_slot() {
        let a = billing_key(b"c1", b"tagA");
        assert_ne!(a, billing_key(b"c1", b"tagB"));
        assert_eq!(
            crate::store::key::hash_tag(&a),
            crate::store::key::hash_tag(&dialog_key("dlg", b"c1", b"c1"))
        );
    }

    #[test]
    fn keys_have_one_size_whatever_the_call_id() {
        let short = billing_key(b"c1", b"t");
        let long = billing_key(&[b'x'; 2000], b"t");
        assert_eq!(short.len(), long.len());
        assert!(long.len() < 100);
        assert_ne!(billing_key(b"ab", b"c"), billing_key(b"a", b"bc"));
        assert_eq!(bounded_user(&"9".repeat(30_000)).len(), MAX_USER);
        assert_eq!(bounded_user(&"元".repeat(100)).len(), 126);
    }

    #[test]
    fn callee_number_selects_the_tariff() {
        let mut c = cfg();
        c.rates = super::super::rates::RateTable::parse("r", "1354,1.005\n", &c.default).unwrap();
        let b = Bill::new(&c, "c", record(), 1_700_000_001_000, HungUpBy::Caller, 0);
        assert_eq!(b.cost_text(), "1.01");
        let mut other = record();
        other.to_user = "999".into();
        let b = Bill::new(&c, "c", other, 1_700_000_001_000, HungUpBy::Caller, 0);
        assert_eq!(b.cost_text(), "0.05");
    }
}
