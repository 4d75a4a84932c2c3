//! The FFI boundary: the only code that may use `unsafe` (the crate denies
//! it everywhere else). Each `unsafe` block here carries a `// SAFETY:` note.
//!
//! Everything but `lmdb_env` talks to Kamailio and needs the kamailio
//! binary's symbols, so unit-test and fuzzing builds leave it out.

#[cfg(not(any(test, fuzzing)))]
pub mod bindings;
#[cfg(not(any(test, fuzzing)))]
pub mod dialog_module;
#[cfg(not(any(test, fuzzing)))]
pub mod exports;
#[cfg(not(any(test, fuzzing)))]
pub mod guard;
pub mod lmdb_env;
#[cfg(not(any(test, fuzzing)))]
pub mod logger;
#[cfg(not(any(test, fuzzing)))]
pub mod module_params;
#[cfg(not(any(test, fuzzing)))]
pub mod msg;
#[cfg(not(any(test, fuzzing)))]
pub mod route;
#[cfg(not(any(test, fuzzing)))]
pub mod rpc;
#[cfg(not(any(test, fuzzing)))]
pub mod script_args;
#[cfg(not(any(test, fuzzing)))]
pub mod script_functions;
#[cfg(not(any(test, fuzzing)))]
pub mod script_table;
#[cfg(not(any(test, fuzzing)))]
pub mod tm;
#[cfg(not(any(test, fuzzing)))]
pub mod tx_state;
#[cfg(not(any(test, fuzzing)))]
pub mod via_swap;
