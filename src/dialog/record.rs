//! What Kamailio keeps about one dialog (one callee tag): both remote
//! targets and both route sets, so an in-dialog request from either side
//! can be routed to the other. Stored under the dialog id and the callee's
//! tag, so each early dialog of a forked call has its own record.

use crate::dialog::knobs::DialogKnobs;
use crate::dialog::token::{binding, Secrets, Side};
use crate::hex::hex_digits;
use crate::store::key::{dialog_key_with, fnv1a64};
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
const CALLER_SECRET: u8 = 10;
const CALLEE_SECRET: u8 = 11;
const CALLER_SOURCE: u8 = 12;
const CALLEE_SOURCE: u8 = 13;
const CALLER_HOP: u8 = 14;
const CALLEE_HOP: u8 = 15;
/// `DialogKnobs::flags` (trusted sides), only when not 0.
const KNOB_FLAGS: u8 = 16;
/// `DialogKnobs::encode_texts` (users and hosts shown), only when set.
const KNOB_TEXTS: u8 = 17;

/// Where the stored value keeps each side's binding (after the state byte):
/// the store compares the one of the side a request goes to before it
/// changes anything (`Store::get_lifecycle`).
pub fn binding_offset(side: Side) -> usize {
    match side {
        Side::Caller => 1,
        Side::Callee => 17,
    }
}

/// The stored value: the state byte (`store::state`), the bindings of the
/// caller side and of the callee side, then the record.
/// `bind_source`: the bindings include the address each side was seen
/// from (module parameter `bind_source`).
pub fn encode_stored(state: u8, record: &DialogRecord, bind_source: bool) -> Vec<u8> {
    let body = record.encode();
    let mut out = Vec::with_capacity(33 + body.len());
    out.push(state);
    out.extend_from_slice(&record.binding(Side::Caller, bind_source));
    out.extend_from_slice(&record.binding(Side::Callee, bind_source));
    out.extend_from_slice(&body);
    out
}

/// The state byte and the record of a stored value.
pub fn decode_stored(raw: &[u8]) -> Result<(u8, DialogRecord), RecordError> {
    if raw.len() < 33 {
        return Err(RecordError::Truncated);
    }
    Ok((raw[0], DialogRecord::decode(&raw[33..])?))
}

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
    /// Each side's secret (in the token that addresses it).
    pub secrets: Secrets,
    /// The address the caller's INVITE came from, the callee's 2xx.
    pub caller_source: String,
    pub callee_source: String,
    /// The same as SIP URIs with port and transport (`route_to_source`).
    pub caller_hop: String,
    pub callee_hop: String,
    /// What the operator chose for each side (`topos_set_contact()`,
    /// `topos_trust()`, `trusted_socket`); the default for a dialog that
    /// uses none of it, and for records written before these existed.
    pub knobs: DialogKnobs,
}

/// FNV-1a of the callee tag: keys stay short whatever tag a peer sends, and
/// the transaction can remember tags as numbers. The full tag is in the
/// record and checked on every lookup.
pub fn tag_hash(tag: &str) -> u64 {
    fnv1a64(tag.as_bytes()).max(1)
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
    /// What a request to `side` must present (see `token::binding`): the
    /// Call-ID and tags as the other side sends them, and with
    /// `bind_source` the address the other side was seen from.
    pub fn binding(&self, side: Side, bind_source: bool) -> [u8; 16] {
        let secret = self.secrets.of(side);
        fn source(s: &str, on: bool) -> &[u8] {
            if on {
                s.as_bytes()
            } else {
                &[]
            }
        }
        match side {
            Side::Callee => binding(
                secret,
                self.call_id.as_bytes(),
                self.caller_tag.as_bytes(),
                self.callee_tag.as_bytes(),
                source(&self.caller_source, bind_source),
            ),
            Side::Caller => binding(
                secret,
                self.callee_call_id.as_bytes(),
                self.callee_tag.as_bytes(),
                self.caller_tag.as_bytes(),
                source(&self.callee_source, bind_source),
            ),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = RecordWriter::new()
            .bytes(CALL_ID, self.call_id.as_bytes())
            .bytes(CALLEE_CALL_ID, self.callee_call_id.as_bytes())
            .bytes(CALLER_TAG, self.caller_tag.as_bytes())
            .bytes(CALLEE_TAG, self.callee_tag.as_bytes())
            .bytes(CALLER_CONTACT, self.caller_contact.as_bytes())
            .bytes(CALLEE_CONTACT, self.callee_contact.as_bytes())
            .u64(CONFIRMED, self.confirmed as u64)
            .bytes(CALLER_SECRET, &self.secrets.caller)
            .bytes(CALLEE_SECRET, &self.secrets.callee)
            .bytes(CALLER_SOURCE, self.caller_source.as_bytes())
            .bytes(CALLEE_SOURCE, self.callee_source.as_bytes())
            .bytes(CALLER_HOP, self.caller_hop.as_bytes())
            .bytes(CALLEE_HOP, self.callee_hop.as_bytes());
        let flags = self.knobs.flags();
        if flags != 0 {
            w = w.u64(KNOB_FLAGS, flags as u64);
        }
        let texts = self.knobs.encode_texts();
        if !texts.is_empty() {
            w = w.bytes(KNOB_TEXTS, &texts);
        }
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
        let secret = |tag| -> Result<[u8; 16], RecordError> {
            r.all(tag)
                .next()
                .ok_or(RecordError::Missing(tag))?
                .try_into()
                .map_err(|_| RecordError::BadField(tag))
        };
        let list = |tag| -> Result<Vec<String>, RecordError> {
            r.all(tag)
                .map(|v| {
                    std::str::from_utf8(v)
                        .map(str::to_string)
                        .map_err(|_| RecordError::BadField(tag))
                })
                .collect()
        };
        let mut knobs = DialogKnobs::default();
        if r.get(KNOB_FLAGS).is_some() {
            knobs.set_flags(r.u64(KNOB_FLAGS)? as u8);
        }
        if !knobs.decode_texts(r.get(KNOB_TEXTS).unwrap_or_default()) {
            return Err(RecordError::BadField(KNOB_TEXTS));
        }
        Ok(DialogRecord {
            knobs,
            call_id: text(CALL_ID)?,
            callee_call_id: text(CALLEE_CALL_ID)?,
            caller_tag: text(CALLER_TAG)?,
            callee_tag: text(CALLEE_TAG)?,
            caller_contact: text(CALLER_CONTACT)?,
            caller_route: list(CALLER_ROUTE)?,
            callee_contact: text(CALLEE_CONTACT)?,
            callee_route: list(CALLEE_ROUTE)?,
            confirmed: r.u64(CONFIRMED)? != 0,
            secrets: Secrets {
                caller: secret(CALLER_SECRET)?,
                callee: secret(CALLEE_SECRET)?,
            },
            caller_source: text(CALLER_SOURCE)?,
            callee_source: text(CALLEE_SOURCE)?,
            caller_hop: text(CALLER_HOP)?,
            callee_hop: text(CALLEE_HOP)?,
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
            secrets: Secrets {
                caller: [1; 16],
                callee: [2; 16],
            },
            caller_source: "10.0.0.1".into(),
            callee_source: "10.0.0.2".into(),
            caller_hop: "sip:10.0.0.1:5060".into(),
            callee_hop: "sip:10.0.0.2:5062;transport=tcp".into(),
            knobs: DialogKnobs::default(),
        };
        assert_eq!(DialogRecord::decode(&r.encode()).unwrap(), r);
        // A record with the operator's choices keeps them.
        let mut k = r.clone();
        k.knobs.callee.trusted = true;
        k.knobs.callee.sees_contacts = true;
        k.knobs.caller.contact.user = "alice".into();
        k.knobs.caller.contact.host = "sbc.example.com:5061".into();
        assert_eq!(DialogRecord::decode(&k.encode()).unwrap(), k);
        // One without them costs no byte more than before.
        assert_eq!(r.encode().len() + 2 + 8 + 2 + 4 + 5 + 20, k.encode().len());
        let stored = encode_stored(b'A', &r, false);
        assert_eq!(decode_stored(&stored).unwrap(), (b'A', r.clone()));
        // Each side's binding sits where the store compares it.
        let o = binding_offset(Side::Callee);
        assert_eq!(stored[o..o + 16], r.binding(Side::Callee, false));
        let o = binding_offset(Side::Caller);
        assert_eq!(stored[o..o + 16], r.binding(Side::Caller, false));
        assert_ne!(
            r.binding(Side::Caller, false),
            r.binding(Side::Callee, false)
        );
        assert_ne!(
            r.binding(Side::Callee, false),
            r.binding(Side::Callee, true)
        );
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
