//! The billing journal's events, pure: what `billing_start()` and
//! `billing_stop()` could not write to the store while it was unavailable,
//! kept on the node until it is back (`crate::billing_journal` keeps and
//! replays them; `crate::store::journal` is the file they are kept in).
//!
//! Each event carries what its store operation needs plus the time it
//! happened, so a call answered or ended during an outage is billed with
//! its real times: an answer (the bill key and the `AnswerRecord`), an end
//! (the caller's Call-ID, both tags, the BYE's time, who sent it, the node).
//!
//! A journaled end whose answer is in no store yet (the call was answered
//! on another node, whose own journal still holds the answer) leaves a
//! `PendingEnd` under each key it may close: the answer, once written,
//! finds it and the call is billed with both times.

use super::call::{billing_key, AnswerRecord, HungUpBy};
use crate::store::record::{Record, RecordError, RecordWriter};

const TAG_KIND: u8 = 1;
const TAG_KEY: u8 = 2;
const TAG_ANSWER: u8 = 3;
const TAG_CALL_ID: u8 = 4;
const TAG_FROM_TAG: u8 = 5;
const TAG_TO_TAG: u8 = 6;
const TAG_END_MS: u8 = 7;
const TAG_BY_KAMAILIO: u8 = 8;
const TAG_NODE: u8 = 9;
const TAG_HANGUP: u8 = 10;

const KIND_ANSWER: &[u8] = b"a";
const KIND_END: &[u8] = b"e";

/// A call answered while the store was unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerEvent {
    /// The bill key (`billing_key`).
    pub key: Vec<u8>,
    pub record: AnswerRecord,
}

/// A BYE `billing_stop()` could not bill because the store was
/// unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndEvent {
    /// The Call-ID as the caller's side knows it (the bill's key and line).
    pub call_id: String,
    /// The BYE's From-tag and To-tag: the caller's tag is one of them
    /// (which one depends on the side that hung up, unknown while the store
    /// cannot say which key holds the bill).
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    /// Wall-clock milliseconds of the BYE.
    pub end_ms: u64,
    /// The BYE was Kamailio's own (dialog module, tm:local-request).
    pub by_kamailio: bool,
    /// server_id of the node that saw the BYE.
    pub node: i64,
}

impl EndEvent {
    /// The bill keys this end may close, in the order `billing_stop()`
    /// tries them, each with who hung up if that key holds the bill: the
    /// From-tag's (the caller sent the BYE), then the To-tag's (the callee
    /// did).
    pub fn candidates(&self) -> Vec<(Vec<u8>, HungUpBy)> {
        [
            (&self.from_tag, HungUpBy::Caller),
            (&self.to_tag, HungUpBy::Callee),
        ]
        .into_iter()
        .filter_map(|(tag, by)| {
            let tag = tag.as_ref()?;
            let by = if self.by_kamailio {
                HungUpBy::Kamailio
            } else {
                by
            };
            Some((billing_key(self.call_id.as_bytes(), tag.as_bytes()), by))
        })
        .collect()
    }

    /// The journal's index entry of this dialog's end: the same whichever
    /// side's BYE it was (tags in either order), so a second BYE of the
    /// dialog finds the first one's end.
    pub fn index(&self) -> Vec<u8> {
        end_index(
            &self.call_id,
            self.from_tag.as_deref(),
            self.to_tag.as_deref(),
        )
    }
}

/// The journal index entry of the answer of bill `key`.
pub fn answer_index(key: &[u8]) -> Vec<u8> {
    let mut i = b"a:".to_vec();
    i.extend_from_slice(key);
    i
}

/// The journal index entry of the end of the dialog of `call_id` between
/// these two tags, in either order.
pub fn end_index(call_id: &str, tag_a: Option<&str>, tag_b: Option<&str>) -> Vec<u8> {
    let (a, b) = (tag_a.unwrap_or(""), tag_b.unwrap_or(""));
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    // Lengths first: ("ab", "c") and ("a", "bc") are different dialogs.
    let mut tags = (low.len() as u64).to_be_bytes().to_vec();
    tags.extend_from_slice(low.as_bytes());
    tags.extend_from_slice(high.as_bytes());
    let mut i = b"e:".to_vec();
    i.extend_from_slice(&billing_key(call_id.as_bytes(), &tags));
    i
}

/// One journaled billing event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Answer(AnswerEvent),
    End(EndEvent),
}

impl Event {
    /// Its journal index entry (see `answer_index`, `end_index`).
    pub fn index(&self) -> Vec<u8> {
        match self {
            Event::Answer(a) => answer_index(&a.key),
            Event::End(e) => e.index(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Event::Answer(a) => RecordWriter::new()
                .bytes(TAG_KIND, KIND_ANSWER)
                .bytes(TAG_KEY, &a.key)
                .bytes(TAG_ANSWER, &a.record.encode())
                .finish(),
            Event::End(e) => {
                let mut w = RecordWriter::new()
                    .bytes(TAG_KIND, KIND_END)
                    .bytes(TAG_CALL_ID, e.call_id.as_bytes());
                if let Some(t) = &e.from_tag {
                    w = w.bytes(TAG_FROM_TAG, t.as_bytes());
                }
                if let Some(t) = &e.to_tag {
                    w = w.bytes(TAG_TO_TAG, t.as_bytes());
                }
                w.u64(TAG_END_MS, e.end_ms)
                    .bytes(TAG_BY_KAMAILIO, &[u8::from(e.by_kamailio)])
                    .u64(TAG_NODE, e.node as u64)
                    .finish()
            }
        }
    }

    pub fn decode(data: &[u8]) -> Result<Event, RecordError> {
        let r = Record::parse(data)?;
        match r.bytes(TAG_KIND)? {
            KIND_ANSWER => Ok(Event::Answer(AnswerEvent {
                key: r.bytes(TAG_KEY)?.to_vec(),
                record: AnswerRecord::decode(r.bytes(TAG_ANSWER)?)?,
            })),
            KIND_END => Ok(Event::End(EndEvent {
                call_id: r.str(TAG_CALL_ID)?.to_string(),
                from_tag: optional_str(&r, TAG_FROM_TAG)?,
                to_tag: optional_str(&r, TAG_TO_TAG)?,
                end_ms: r.u64(TAG_END_MS)?,
                by_kamailio: r.bytes(TAG_BY_KAMAILIO)? == [1],
                node: r.u64(TAG_NODE)? as i64,
            })),
            _ => Err(RecordError::BadField(TAG_KIND)),
        }
    }
}

fn optional_str(r: &Record<'_>, tag: u8) -> Result<Option<String>, RecordError> {
    match r.get(tag) {
        None => Ok(None),
        Some(_) => Ok(Some(r.str(tag)?.to_string())),
    }
}

/// What a journaled end leaves in the store under a bill key that holds
/// nothing yet (after the state byte `store::state::PENDING_END`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEnd {
    pub call_id: String,
    pub end_ms: u64,
    pub hangup: HungUpBy,
    pub node: i64,
}

impl PendingEnd {
    pub fn encode(&self) -> Vec<u8> {
        RecordWriter::new()
            .bytes(TAG_CALL_ID, self.call_id.as_bytes())
            .u64(TAG_END_MS, self.end_ms)
            .bytes(TAG_HANGUP, self.hangup.as_str().as_bytes())
            .u64(TAG_NODE, self.node as u64)
            .finish()
    }

    pub fn decode(data: &[u8]) -> Result<PendingEnd, RecordError> {
        let r = Record::parse(data)?;
        Ok(PendingEnd {
            call_id: r.str(TAG_CALL_ID)?.to_string(),
            end_ms: r.u64(TAG_END_MS)?,
            hangup: HungUpBy::parse(r.str(TAG_HANGUP)?).ok_or(RecordError::BadField(TAG_HANGUP))?,
            node: r.u64(TAG_NODE)? as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Event {
        Event::Answer(AnswerEvent {
            key: billing_key(b"c1", b"ft"),
            record: AnswerRecord {
                answer_ms: 1_700_000_000_000,
                from_user: "01089672389".into(),
                to_user: "13545769997".into(),
            },
        })
    }

    fn end() -> EndEvent {
        EndEvent {
            call_id: "c1".into(),
            from_tag: Some("tt".into()),
            to_tag: Some("ft".into()),
            end_ms: 1_700_000_002_500,
            by_kamailio: false,
            node: -3,
        }
    }

    #[test]
    fn events_round_trip() {
        for e in [answer(), Event::End(end())] {
            assert_eq!(Event::decode(&e.encode()).unwrap(), e);
        }
        let mut e = end();
        e.to_tag = None;
        e.by_kamailio = true;
        assert_eq!(
            Event::decode(&Event::End(e.clone()).encode()).unwrap(),
            Event::End(e)
        );
        let p = PendingEnd {
            call_id: "c1".into(),
            end_ms: 5,
            hangup: HungUpBy::Kamailio,
            node: 7,
        };
        assert_eq!(PendingEnd::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn damaged_events_are_errors_not_panics() {
        assert!(Event::decode(b"").is_err());
        let unknown = RecordWriter::new().bytes(TAG_KIND, b"x").finish();
        assert_eq!(
            Event::decode(&unknown).unwrap_err(),
            RecordError::BadField(TAG_KIND)
        );
        let bytes = answer().encode();
        for n in 0..bytes.len() {
            let _ = Event::decode(&bytes[..n]);
        }
    }

    #[test]
    fn an_end_tries_the_from_tag_then_the_to_tag() {
        let e = end();
        assert_eq!(
            e.candidates(),
            vec![
                (billing_key(b"c1", b"tt"), HungUpBy::Caller),
                (billing_key(b"c1", b"ft"), HungUpBy::Callee),
            ]
        );
        let mut local = e.clone();
        local.by_kamailio = true;
        assert!(local
            .candidates()
            .iter()
            .all(|(_, by)| *by == HungUpBy::Kamailio));
    }

    #[test]
    fn both_sides_bye_share_one_end_index_and_answers_have_their_own() {
        let caller_bye = end_index("c1", Some("ft"), Some("tt"));
        assert_eq!(caller_bye, end_index("c1", Some("tt"), Some("ft")));
        assert_ne!(caller_bye, end_index("c2", Some("ft"), Some("tt")));
        assert_ne!(
            end_index("c", Some("ab"), Some("c")),
            end_index("c", Some("a"), Some("bc"))
        );
        assert_eq!(Event::End(end()).index(), caller_bye);
        let key = billing_key(b"c1", b"ft");
        assert_eq!(answer().index(), answer_index(&key));
        assert_ne!(answer_index(&key), caller_bye);
    }
}
