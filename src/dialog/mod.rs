//! Dialog topology hiding, the pure part: tokens, the dialog record, and
//! the edits that hide Record-Route, Route, Contact and (optionally) the
//! Call-ID of each message. The script functions that apply them are in
//! `crate::topos`.

pub mod knobs;
pub mod plan;
pub mod record;
pub mod sealed;
pub mod token;
pub mod token_uri;
