//! The FFI boundary: the only code that touches Kamailio's pointers. Each
//! `unsafe` block here carries a `// SAFETY:` note.

pub mod bindings;
pub mod dialog_module;
pub mod exports;
pub mod guard;
pub mod kemi;
pub mod logger;
pub mod msg;
pub mod route;
pub mod rpc;
pub mod tm;
pub mod tx_state;
pub mod via_swap;
