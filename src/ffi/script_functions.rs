//! The module's script functions, each declared once: name, parameters,
//! the cfg routing blocks it may run in, and its handler. The cfg table
//! (in `exports`) and the KEMI table (registered by `mod_register`) are
//! both built from this list (see `script_table::script_functions!`).

use super::bindings::{
    cmd_export_t, server_id, sip_msg, sr_kemi_t, str_, ANY_ROUTE, BRANCH_ROUTE, CORE_ONREPLY_ROUTE,
    FAILURE_ROUTE, LOCAL_ROUTE, REQUEST_ROUTE, TM_ONREPLY_ROUTE,
};
use super::msg::SipMsg;
use super::script_args::ScriptArgs;
use super::script_table::{
    c_name, cfg_export, entry3, kemi_export, run_script, script_functions, Param, CFG_END,
    KEMI_END,
};
use crate::error::Result;
use crate::script_result::ScriptResult;
use crate::{billing_functions, diagnostics, topos};
use std::os::raw::{c_char, c_int, c_void};

script_functions! {
    /// Hides the topology of a request (and of its dialog).
    fn topos_request() in REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE | LOCAL_ROUTE
        => topos::topos_request;
    /// Hides the topology of a reply.
    fn topos_reply() in TM_ONREPLY_ROUTE | CORE_ONREPLY_ROUTE => topos::topos_reply;
    /// `topos_set_contact(side, user, host)`: the user part and host of
    /// the masked Contact that stands in for `side` in this dialog.
    fn topos_set_contact(Text, Text, Text) in REQUEST_ROUTE | CORE_ONREPLY_ROUTE
        => topos::topos_set_contact;
    /// `topos_trust(side)`: messages towards `side` leave unhidden.
    fn topos_trust(Text) in REQUEST_ROUTE => topos::topos_trust;
    /// Starts billing the call a 2xx answers.
    fn billing_start() in TM_ONREPLY_ROUTE | CORE_ONREPLY_ROUTE
        => billing_functions::billing_start;
    /// Bills the call a BYE ends, as this node (core parameter server_id).
    fn billing_stop() in REQUEST_ROUTE | LOCAL_ROUTE
        => |m| billing_functions::billing_stop(m, server_node());
    /// `topos_store_set(key, value)`: writes a diagnostic record.
    fn topos_store_set(Text, Text) in ANY_ROUTE => diagnostics::topos_store_set;
    /// `topos_store_get(key, $var)`: reads a diagnostic record into `$var`.
    fn topos_store_get(Text, Variable) in ANY_ROUTE => diagnostics::topos_store_get;
}

/// This node's server_id (core parameter), for CDRs.
fn server_node() -> i64 {
    // SAFETY: server_id is a core global, set from the config before fork.
    unsafe { server_id as i64 }
}
