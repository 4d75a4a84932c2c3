//! The dialog module, when the configuration loads it (the C side is in
//! shim.c): a dialog it keeps for an INVITE that topos_request() hid must
//! not expect the caller side's Record-Routes in the callee's 2xx (the
//! callee never saw them), or its BYEs to the callee would skip the callee
//! side's proxies.

use super::bindings::{
    sip_msg, topos_shim_bind_dialog, topos_shim_dlg_hidden_invite, topos_shim_dlg_to_callee,
};
use super::guard::guard;
use super::msg::SipMsg;
use crate::error::{Error, Result};
use crate::message_context;
use std::os::raw::c_int;

/// Binds the dialog module's API if it is loaded (mod_init); false if not.
pub fn bind() -> Result<bool> {
    // SAFETY: looks the module up among the loaded ones and registers a
    // 'static callback; called once, before the fork.
    match unsafe { topos_shim_bind_dialog() } {
        1 => Ok(true),
        0 => Ok(false),
        _ => Err(Error::Kamailio("cannot bind the dialog module's API")),
    }
}

/// topos_request() hid this dialog-creating INVITE: a dialog the module
/// already made for it (dlg_manage() ran first) learns so now; one made
/// later learns it in the module's creation callback.
pub fn hidden_invite(msg: &SipMsg) {
    // SAFETY: the shim asks the dialog module for this message's dialog
    // and releases the reference it took.
    unsafe { topos_shim_dlg_hidden_invite(msg.as_ptr()) }
}

/// For a request Kamailio sends itself (the dialog module's BYE): true if
/// the dialog module keeps its dialog and it goes to the callee's leg.
pub fn goes_to_callee(msg: &SipMsg) -> bool {
    // SAFETY: the shim parses this message's From and Call-ID and asks the
    // dialog module for its dialog, releasing the reference it took.
    unsafe { topos_shim_dlg_to_callee(msg.as_ptr()) == 1 }
}

/// Called by the dialog module's creation callback (through the shim): 1 if
/// topos_request() hid `msg` and took the caller side's Record-Routes out
/// (not for a trusted callee, which sees them).
///
/// # Safety
/// `msg` is the request the dialog module is creating a dialog for.
#[no_mangle]
pub unsafe extern "C" fn topos_rs_request_was_hidden(msg: *mut sip_msg) -> c_int {
    guard("dialog creation callback", || {
        // SAFETY: the request being processed, valid for the call.
        match unsafe { SipMsg::from_raw(msg) } {
            Some(m) => {
                message_context::read(m.identity(), |c| c.hidden && !c.record_routes_kept) as c_int
            }
            None => 0,
        }
    })
}
