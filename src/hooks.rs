//! Connects the parts that must not know each other, once at mod_init
//! (before any message and before the fork): topos handles the events of
//! hidden tm transactions, and billing learns when topos hid a reply to a
//! dialog-creating request (to run a `billing_start()` noted before tm
//! matched the reply); the egress gate sees every message Kamailio sends.

/// Registers every hook; an error stops start-up.
pub fn connect() -> crate::error::Result<()> {
    crate::ffi::tm::register_hooks(&crate::topos::TM_HOOKS);
    crate::topos::on_initial_reply_hidden(crate::billing_functions::run_deferred_start);
    crate::ffi::egress::register(&crate::topos::EGRESS_GATE)
}
