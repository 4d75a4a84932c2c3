//! topos_rs: a Kamailio module that hides a SIP proxy's topology.
//!
//! `sip`, `config` and `store` are pure (no Kamailio types) and tested by
//! plain `cargo test`; `ffi` is the boundary to Kamailio and the only module
//! allowed to hold `unsafe` code (the lints below enforce it, see
//! docs/safety.md); `topos` holds the behaviour of the script functions,
//! written against `ffi`'s safe wrappers.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod crypto;
pub mod error;
// The Kamailio part of the FFI layer calls symbols that only the kamailio
// binary provides, so unit-test binaries (which have no Kamailio to link
// against) leave it out (see ffi/mod.rs).
pub mod billing;
#[cfg(not(any(test, fuzzing)))]
pub mod billing_functions;
#[cfg(not(any(test, fuzzing)))]
pub mod billing_journal;
#[cfg(not(any(test, fuzzing)))]
pub mod billing_store;
pub mod clock;
#[cfg(not(any(test, fuzzing)))]
pub mod diagnostics;
pub mod dialog;
#[allow(unsafe_code)]
pub mod ffi;
pub mod hex;
#[cfg(not(any(test, fuzzing)))]
pub mod hooks;
pub mod log_text;
pub mod message_context;
#[cfg(not(any(test, fuzzing)))]
pub mod rpc_commands;
pub mod script_result;
pub mod sip;
pub mod state;
pub mod stats;
pub mod store;
pub mod token_keys;
#[cfg(not(any(test, fuzzing)))]
pub mod topos;
