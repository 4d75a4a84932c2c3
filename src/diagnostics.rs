//! `topos_store_set(key, value)` / `topos_store_get(key, $var)`: read and
//! write the module's store from the routing script, for health checks and
//! diagnostics (is the store reachable, do the nodes of a cluster share it).
//! Keys are namespaced under `topos_rs:{...}:diag:` so they never touch the
//! records of calls.

use crate::error::Result;
use crate::ffi::msg::{ScriptParam, SipMsg};
use crate::state::with_store;
use crate::store::key::dialog_key;
use std::time::Duration;

/// Diagnostic records expire after an hour.
const DIAG_TTL: Duration = Duration::from_secs(3600);

pub fn topos_store_set(msg: &mut SipMsg, key: ScriptParam, value: ScriptParam) -> Result<bool> {
    let key = msg.param_str(key)?;
    let key = dialog_key("diag", &key, &key);
    let value = msg.param_str(value)?;
    Ok(with_store("topos_store_set", |s| s.put(&key, &value, DIAG_TTL)).is_some())
}

pub fn topos_store_get(msg: &mut SipMsg, key: ScriptParam, out: ScriptParam) -> Result<bool> {
    let key = msg.param_str(key)?;
    let key = dialog_key("diag", &key, &key);
    match with_store("topos_store_get", |s| s.get(&key)) {
        Some(Some(value)) => {
            msg.set_pv_str(out, &value)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}
