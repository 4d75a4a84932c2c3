//! SIP text handling: pure functions over message bytes, no Kamailio types.

pub mod dialog_ids;
pub mod edit;
pub mod headers;
pub mod name_addr;
pub mod outgoing;
pub mod replaces;
pub mod request_line;
pub mod restore;
pub mod sipfrag;
pub mod via;
