//! The module's error type: what kind of failure it is, and (its Display)
//! the text for the operator's log. Operators and tests match those texts,
//! so each variant's text is fixed.

use crate::billing::rates::RatesError;
use crate::config::ParamError;
use crate::dialog::plan::PlanError;
use crate::sip::dialog_ids::DialogError;
use crate::sip::headers::ScanError;
use crate::sip::restore::RestoreError;
use crate::sip::via::ViaError;
use crate::store::record::RecordError;
use crate::store::StoreError;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The header section cannot be scanned.
    Scan(ScanError),
    /// A Via value cannot be parsed.
    Via(ViaError),
    /// A request's Via stack cannot be rebuilt for its replies.
    Restore(RestoreError),
    /// A modparam value that cannot be used.
    Param(ParamError),
    /// Call-ID, tags or CSeq are missing or malformed.
    Dialog(DialogError),
    /// A dialog step cannot be planned.
    Plan(PlanError),
    /// The rates file is not valid.
    Rates(RatesError),
    /// The store failed (unreachable, full, backend error).
    Store(StoreError),
    /// A part of the message the function needs is missing or malformed.
    Malformed(&'static str),
    /// A dialog-creating request whose caller side (Contact, Record-Route)
    /// would leave no room for the callee's in the dialog record.
    CallerSideTooLarge { bytes: usize, limit: usize },
    /// A function called where it cannot work (a reply handed to a
    /// request function, a parameter the script did not pass).
    Misuse(&'static str),
    /// Kamailio refused a call or lacks an API the module needs.
    Kamailio(&'static str),
    /// tm refused to register the callbacks of a hidden transaction.
    TmRefusedCallbacks(i32),
    /// An edit outside the message it is for (a bug in the caller).
    LumpOutOfRange {
        start: usize,
        end: usize,
        len: usize,
    },
    /// Kamailio's pkg or shared memory is exhausted.
    OutOfMemory(&'static str),
    /// The system has no randomness for a dialog token.
    NoRandomness(getrandom::Error),
    /// The store is not there for this call (not opened, not configured).
    Storage(&'static str),
    /// A dialog record in the store that cannot be decoded.
    UnreadableDialog(RecordError),
    /// A call's billing record in the store that cannot be decoded.
    UnreadableBill { call_id: String, error: RecordError },
    /// The configuration lacks what the call needs.
    Config(&'static str),
    /// The rates file cannot be read (`error` is the I/O error's text).
    RatesFileUnreadable { path: String, error: String },
    /// Called before mod_init configured the module.
    NotInitialized,
    /// Kamailio's counters API refused to register a counter
    /// (`counter_register` returned `code`).
    CounterRefused { name: &'static str, code: i32 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Scan(e) => e.fmt(f),
            Error::Via(e) => e.fmt(f),
            Error::Restore(e) => e.fmt(f),
            Error::Param(e) => e.fmt(f),
            Error::Dialog(e) => e.fmt(f),
            Error::Plan(e) => e.fmt(f),
            Error::Rates(e) => e.fmt(f),
            Error::Store(e) => e.fmt(f),
            Error::Malformed(text)
            | Error::Misuse(text)
            | Error::Kamailio(text)
            | Error::OutOfMemory(text)
            | Error::Storage(text)
            | Error::Config(text) => f.write_str(text),
            Error::CallerSideTooLarge { bytes, limit } => write!(
                f,
                "the caller side's Contact and Record-Route take {bytes} bytes (at most {limit})"
            ),
            Error::TmRefusedCallbacks(rc) => {
                write!(f, "tm refused the transaction callbacks ({rc})")
            }
            Error::LumpOutOfRange { start, end, len } => {
                write!(f, "lump range {start}..{end} outside a {len}-byte message")
            }
            Error::NoRandomness(e) => write!(f, "no randomness for a token: {e}"),
            Error::UnreadableDialog(e) => write!(f, "unreadable dialog record: {e}"),
            Error::UnreadableBill { call_id, error } => write!(
                f,
                "billing_stop: the billing record of Call-ID {call_id} is unreadable ({error}); not billed"
            ),
            Error::RatesFileUnreadable { path, error } => {
                write!(f, "rates file {path}: cannot read: {error}")
            }
            Error::NotInitialized => f.write_str("topos_rs is not initialized"),
            Error::CounterRefused { name, code } => {
                let why = match code {
                    -2 => "a counter of that name exists already",
                    _ => "its table is full, it is past the fork, or out of memory",
                };
                write!(
                    f,
                    "Kamailio refused the counter topos_rs.{name} ({why}; counter_register \
                     returned {code}): topos_rs does not start"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

macro_rules! wrap {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::$variant(e)
            }
        }
    )*};
}

wrap!(
    ScanError => Scan,
    ViaError => Via,
    RestoreError => Restore,
    ParamError => Param,
    DialogError => Dialog,
    PlanError => Plan,
    RatesError => Rates,
    StoreError => Store,
);

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_operators_log_lines() {
        let storage = Error::Param(ParamError {
            param: "storage",
            message: "not resolved".into(),
        });
        assert_eq!(storage.to_string(), "modparam \"storage\": not resolved");
        assert_eq!(
            Error::UnreadableDialog(RecordError::Truncated).to_string(),
            format!("unreadable dialog record: {}", RecordError::Truncated)
        );
        assert_eq!(
            Error::LumpOutOfRange {
                start: 5,
                end: 3,
                len: 10
            }
            .to_string(),
            "lump range 5..3 outside a 10-byte message"
        );
        assert_eq!(
            Error::Misuse("topos_reply() called for a request").to_string(),
            "topos_reply() called for a request"
        );
        assert_eq!(
            Error::NotInitialized.to_string(),
            "topos_rs is not initialized"
        );
        assert_eq!(
            Error::CounterRefused {
                name: "calls_billed",
                code: -2
            }
            .to_string(),
            "Kamailio refused the counter topos_rs.calls_billed (a counter of that name \
             exists already; counter_register returned -2): topos_rs does not start"
        );
    }
}
