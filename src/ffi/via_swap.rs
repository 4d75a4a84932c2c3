//! Keeps the core from writing `;received=` / `;rport=` into a hidden
//! request while it builds the outgoing copy.
//!
//! The core adds those parameters as lumps anchored inside the sender's top
//! Via (core/msg_translator.c, build_req_buf_from_sip_req). topos_rs deletes
//! that Via, and an anchor inside a deleted zone is moved to its end: the
//! parameter text would land at the start of the next header and leak the
//! sender's address. So, just for the build, the message's `via1` points at a
//! copy that asks for nothing: no received/rport parameter, sent-by equal to
//! the source address, FL_FORCE_RPORT cleared. The real values are restored
//! right after, and the reply path adds the same texts to the restored stack
//! (see `SipMsg::top_via_update`).
//!
//! Transaction matching reads `via1` too, so the swap happens only after tm
//! has matched the request (TMCB_REQUEST_FWDED), or, for an ACK relayed
//! statelessly, once it is known that tm will not absorb it.

use super::bindings::{
    global_req_flags, ip_addr2a, sip_msg, topos_msg_flags_t, via_body, FL_FORCE_RPORT,
};
use super::msg::SipMsg;
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::ffi::CStr;

struct Swapped {
    msg: *mut sip_msg,
    real_via1: *mut via_body,
    msg_flags: topos_msg_flags_t,
    global_flags: topos_msg_flags_t,
    /// The stand-in `via1`; boxed so its address is stable.
    fake: Box<via_body>,
    /// Storage for the stand-in's host text.
    _host: Box<[u8]>,
}

thread_local! {
    // Kamailio workers are single-threaded processes: one swap at a time.
    static SWAPPED: RefCell<Option<Swapped>> = const { RefCell::new(None) };
}

/// Points `msg.via1` at a stand-in until `restore` (idempotent per message).
pub fn suppress_top_via_update(msg: &mut SipMsg) -> Result<()> {
    let raw = msg.as_ptr();
    SWAPPED.with(|cell| {
        let mut slot = cell.borrow_mut();
        let m = msg.raw_mut();
        if let Some(s) = slot.as_ref() {
            if s.msg == raw && std::ptr::eq(m.via1, &*s.fake) {
                return Ok(()); // another branch of the same message
            }
        }
        // A stale record belongs to a message that is gone (restore was
        // not reached because sending failed); drop it without touching it,
        // but put the per-process flag back.
        if let Some(stale) = slot.take() {
            restore_global_flag(stale.global_flags);
        }
        if m.via1.is_null() {
            return Err(Error::Malformed("request has no parsed top Via"));
        }
        // SAFETY: ip_addr2a formats the source address into a static buffer
        // that is copied at once; via1 is a valid parsed Via.
        let (host, fake) = unsafe {
            let text = CStr::from_ptr(ip_addr2a(&mut m.rcv.src_ip)).to_bytes();
            let host: Box<[u8]> = text.into();
            let mut fake = Box::new(std::ptr::read(m.via1));
            fake.received = std::ptr::null_mut();
            fake.rport = std::ptr::null_mut();
            fake.host.s = host.as_ptr() as *mut _;
            fake.host.len = host.len() as i32;
            (host, fake)
        };
        let rec = Swapped {
            msg: raw,
            real_via1: m.via1,
            msg_flags: m.msg_flags,
            // SAFETY: per-process global, only touched by this process.
            global_flags: unsafe { global_req_flags },
            fake,
            _host: host,
        };
        m.via1 = &*rec.fake as *const via_body as *mut via_body;
        m.msg_flags &= !FL_FORCE_RPORT;
        // SAFETY: as above; restored by `restore`.
        unsafe { global_req_flags &= !FL_FORCE_RPORT };
        *slot = Some(rec);
        Ok(())
    })
}

/// Puts back the real `via1` and flags if `msg` is the swapped message.
pub fn restore(msg: &mut SipMsg) {
    SWAPPED.with(|cell| {
        let mut slot = cell.borrow_mut();
        let Some(s) = slot.as_ref() else { return };
        if s.msg != msg.as_ptr() {
            return;
        }
        // The via1 comparison proves the message still carries our stand-in.
        let m = msg.raw_mut();
        if std::ptr::eq(m.via1, &*s.fake) {
            m.via1 = s.real_via1;
            m.msg_flags = (m.msg_flags & !FL_FORCE_RPORT) | (s.msg_flags & FL_FORCE_RPORT);
        }
        restore_global_flag(s.global_flags);
        *slot = None;
    });
}

fn restore_global_flag(saved: topos_msg_flags_t) {
    // SAFETY: per-process global, only touched by this process.
    unsafe {
        global_req_flags = (global_req_flags & !FL_FORCE_RPORT) | (saved & FL_FORCE_RPORT);
    }
}
