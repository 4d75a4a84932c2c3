//! `topos_store_set(key, value)` / `topos_store_get(key, $var)`: read and
//! write the module's store from the routing script, for health checks and
//! diagnostics (is the store reachable, do the nodes of a cluster share it).
//! Keys are namespaced under `topos_rs:{...}:diag:` so they never touch the
//! records of calls.

use crate::error::Result;
use crate::ffi::msg::SipMsg;
use crate::ffi::script_args::ScriptArgs;
use crate::state::with_store;
use crate::store::key::dialog_key;
use std::time::Duration;

/// Diagnostic records expire after an hour.
const DIAG_TTL: Duration = Duration::from_secs(3600);

fn diag_key(key: &[u8]) -> Vec<u8> {
    dialog_key("diag", key, key)
}

/// Stores `value` under the diagnostic `key`; false if the store failed.
fn store_set(key: &[u8], value: &[u8]) -> Result<bool> {
    Ok(with_store("topos_store_set", |s| {
        s.put(&diag_key(key), value, DIAG_TTL)
    })
    .is_some())
}

/// The value of the diagnostic `key`, if any.
fn store_get(key: &[u8]) -> Option<Vec<u8>> {
    with_store("topos_store_get", |s| s.get(&diag_key(key))).flatten()
}

/// `topos_store_set(key, value)`, from cfg or KEMI.
pub fn topos_store_set(msg: &mut SipMsg, args: &ScriptArgs) -> Result<bool> {
    let key = args.text(msg, 0)?;
    let value = args.text(msg, 1)?;
    store_set(&key, &value)
}

/// `topos_store_get(key, $var)`, from cfg or KEMI: sets the variable.
pub fn topos_store_get(msg: &mut SipMsg, args: &ScriptArgs) -> Result<bool> {
    let key = args.text(msg, 0)?;
    match store_get(&key) {
        Some(value) => {
            args.set_variable(msg, 1, &value)?;
            Ok(true)
        }
        None => Ok(false),
    }
}
