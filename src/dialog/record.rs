//! What Kamailio keeps about one dialog (one callee tag): both remote
//! targets and both route sets, so an in-dialog request from either side
//! can be routed to the other. Stored under the dialog id and the callee's
//! tag, so each early dialog of a forked call has its own record.

use crate::hex::hex_digits;
use crate::store::key::dialog_key_with;
use crate::store::record::{Record, RecordError, RecordWriter};

const CALL_ID: u8 = 1;
const CALLEE_CALL_ID: u8 = 2;
const CALLER_TAG: u8 = 3;
const CALLEE_TAG: u8 = 4;
const CALLER_CONTACT: u8 = 5;
const CALLER_ROUTE: u8 = 6;
const CALLEE_CONTACT: u8 = 7;
const CALLEE_ROUTE: u8 = 8;
const CONFIRMED: u8 = 9;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialogRecord {
    /// The Call-ID as the caller's side knows it.
    pub call_id: String,
    /// The Call-ID as the callee's side knows it (differs with mask_callid).
    pub callee_call_id: String,
    pub caller_tag: String,
    pub callee_tag: String,
    /// The caller's real Contact URI (remote target for the callee's requests).
    pub caller_contact: String,
    /// Route set from Kamailio to the caller: the caller side's
    /// Record-Route entries, nearest first.
    pub caller_route: Vec<String>,
    pub callee_contact: String,
    /// Route set from Kamailio to the callee, nearest first.
    pub callee_route: Vec<String>,
    /// A 2xx confirmed this dialog (else it is early).
    pub confirmed: bool,
}

/// FNV-1a of the callee tag: keys stay short whatever tag a peer sends, and
/// the transaction can remember tags as numbers. The full tag is in the
/// record and checked on every lookup.
pub fn tag_hash(tag: &str) -> u64 {
    let h = tag.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    h.max(1)
}

/// `topos_rs:{<tag of the dialog id>}:dlg:<dialog id hex> <tag hash hex>`.
pub fn record_key(dialog_hex: &str, callee_tag_hash: u64) -> Vec<u8> {
    // The id is `<dialog hex> <tag hash as 16 hex digits>`.
    let mut suffix = [b' '; 17];
    for (d, h) in suffix[1..]
        .iter_mut()
        .zip(hex_digits(&callee_tag_hash.to_be_bytes()))
    {
        *d = h;
    }
    dialog_key_with("dlg", dialog_hex.as_bytes(), dialog_hex.as_bytes(), &suffix)
}

impl DialogRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = RecordWriter::new()
            .bytes(CALL_ID, self.call_id.as_bytes())
            .bytes(CALLEE_CALL_ID, self.callee_call_id.as_bytes())
            .bytes(CALLER_TAG, self.caller_tag.as_bytes())
            .bytes(CALLEE_TAG, self.callee_tag.as_bytes())
            .bytes(CALLER_CONTACT, self.caller_contact.as_bytes())
            .bytes(CALLEE_CONTACT, self.callee_contact.as_bytes())
            .u64(CONFIRMED, self.confirmed as u64);
        for r in &self.caller_route {
            w = w.bytes(CALLER_ROUTE, r.as_bytes());
        }
        for r in &self.callee_route {
            w = w.bytes(CALLEE_ROUTE, r.as_bytes());
        }
        w.finish()
    }

    pub fn decode(data: &[u8]) -> Result<DialogRecord, RecordError> {
        let r = Record::parse(data)?;
        let text = |tag| r.str(tag).map(str::to_string);
        let list = |tag| -> Result<Vec<String>, RecordError> {
            r.all(tag)
                .map(|v| {
                    std::str::from_utf8(v)
                        .map(str::to_string)
                        .map_err(|_| RecordError::BadField(tag))
                })
                .collect()
        };
        Ok(DialogRecord {
            call_id: text(CALL_ID)?,
            callee_call_id: text(CALLEE_CALL_ID)?,
            caller_tag: text(CALLER_TAG)?,
            callee_tag: text(CALLEE_TAG)?,
            caller_contact: text(CALLER_CONTACT)?,
            caller_route: list(CALLER_ROUTE)?,
            callee_contact: text(CALLEE_CONTACT)?,
            callee_route: list(CALLEE_ROUTE)?,
            confirmed: r.u64(CONFIRMED)? != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_route_order() {
        let r = DialogRecord {
            call_id: "c1".into(),
            callee_call_id: "m1".into(),
            caller_tag: "ft".into(),
            callee_tag: "tt".into(),
            caller_contact: "sip:alice@10.0.0.1".into(),
            caller_route: vec!["<sip:p1;lr>".into(), "<sip:p2;lr>".into()],
            callee_contact: "sip:bob@10.0.0.2".into(),
            callee_route: vec![],
            confirmed: true,
        };
        assert_eq!(DialogRecord::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn keys_differ_per_callee_tag_and_share_a_slot() {
        let a = record_key("00ff", tag_hash("t1"));
        let b = record_key("00ff", tag_hash("t2"));
        assert_ne!(a, b);
        assert_eq!(
            crate::store::key::hash_tag(&a),
            crate::store::key::hash_tag(&b)
        );
        assert_ne!(tag_hash(""), 0);
    }

    #[test]
    fn key_format_is_stable_across_versions() {
        // Records outlive a module upgrade in Redis: the key must not change.
        assert_eq!(
            String::from_utf8(record_key("00ff", 0x1234)).unwrap(),
            "topos_rs:{c3489ff9ec486615}:dlg:00ff 0000000000001234"
        );
    }
}
