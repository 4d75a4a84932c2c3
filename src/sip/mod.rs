//! SIP text handling: pure functions over message bytes, no Kamailio types.

pub mod dialog_ids;
pub mod edit;
pub mod headers;
pub mod name_addr;
pub mod restore;
pub mod via;
