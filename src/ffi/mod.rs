//! The FFI boundary: the only code that may use `unsafe` (the crate denies
//! it everywhere else). Each `unsafe` block here carries a `// SAFETY:` note.
//!
//! Everything but `lmdb_env` talks to Kamailio and needs the kamailio
//! binary's symbols, so unit-test and fuzzing builds leave it out.

/// Declares the modules that talk to Kamailio, each left out of unit-test
/// and fuzzing builds (they link against the kamailio binary's symbols).
macro_rules! kamailio_linked {
    ($($module:ident),* $(,)?) => {
        $(
            #[cfg(not(any(test, fuzzing)))]
            pub mod $module;
        )*
    };
}

kamailio_linked!(
    bindings,
    counters,
    dialog_module,
    egress,
    exports,
    guard,
    logger,
    module_params,
    msg,
    route,
    rpc,
    script_args,
    script_functions,
    script_table,
    sockets,
    tm,
    tx_state,
    via_swap,
);

pub mod lmdb_env;
