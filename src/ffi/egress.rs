//! The egress gate at the FFI boundary: the core's network-out event
//! (SREV_NET_DATA_OUT, registered by the C shim) shows every message
//! Kamailio is about to send to the gate the module registered at mod_init,
//! whatever path built it (t_relay() of an ACK tm matched end to end,
//! forward(), a failure_route branch, a script that ignored
//! topos_request()'s -1). A message the gate refuses does not leave (the
//! shim empties it and the core's send fails).

use super::bindings::topos_shim_register_egress;
use super::guard::guard;
use crate::error::{Error, Result};
use std::os::raw::{c_char, c_int};
use std::sync::OnceLock;

/// What decides on an outgoing message.
pub trait EgressGate: Sync {
    /// True: `buf` (a whole message as it would leave) must not be sent.
    fn refuse(&self, buf: &[u8]) -> bool;
}

static GATE: OnceLock<&'static dyn EgressGate> = OnceLock::new();

/// Installs the gate and registers it with the core (mod_init, before the
/// fork; the first gate wins).
pub fn register(gate: &'static dyn EgressGate) -> Result<()> {
    if GATE.set(gate).is_err() {
        return Ok(());
    }
    // SAFETY: registers a 'static callback with the core's event list.
    if unsafe { topos_shim_register_egress(Some(check_outgoing)) } < 0 {
        return Err(Error::Kamailio(
            "cannot register the egress check (the core's network-out event list is full)",
        ));
    }
    Ok(())
}

/// Called by the shim for every message the core sends: 0 lets it go, 1
/// drops it, and so does -1 (the guard's answer to a panic: fail closed).
unsafe extern "C" fn check_outgoing(buf: *const c_char, len: c_int) -> c_int {
    guard("topos_rs egress check", || {
        let (Some(gate), false, true) = (GATE.get(), buf.is_null(), len > 0) else {
            return 0;
        };
        // SAFETY: the core's copy of the outgoing buffer, `len` bytes,
        // valid for this call.
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
        c_int::from(gate.refuse(bytes))
    })
}
