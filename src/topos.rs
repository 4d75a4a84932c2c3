//! Via hiding: what `topos_request()` and `topos_reply()` do, written against
//! the safe `SipMsg` / `Transaction` wrappers and the pure `sip` functions.
//!
//! The original Via stack never leaves the transaction: tm keeps the request
//! as it arrived (`t->uas.request`), and every relayed reply gets the stack
//! back from there. No storage, no I/O.

use crate::error::{Error, Result};
use crate::ffi::msg::SipMsg;
use crate::ffi::route::{current_route, Route};
use crate::ffi::tm::{self, Transaction};
use crate::ffi::via_swap;
use crate::sip::headers::via_fields;
use crate::sip::restore::restored_via_block;
use crate::sip::via::parse_via_value;
use std::cell::Cell;

thread_local! {
    // Per-process memory of the last message handled, so a second call for
    // the same message (script calls it twice, or the tm callback already
    // ran) changes nothing.
    static LAST_HIDDEN: Cell<(usize, u32, i32)> = const { Cell::new((0, 0, 0)) };
    static LAST_RESTORED: Cell<(usize, u32, i32)> = const { Cell::new((0, 0, 0)) };
}

/// `topos_request()`: the request leaves with exactly one Via, Kamailio's.
pub fn topos_request(msg: &mut SipMsg) -> Result<bool> {
    if !msg.is_request() {
        return Err(Error::new("topos_request() called for a reply"));
    }
    let id = msg.identity();
    if LAST_HIDDEN.get() == id {
        return Ok(true);
    }
    let vias = via_fields(msg.buf())?;
    if vias.is_empty() {
        return Err(Error::new("request has no Via header"));
    }
    for v in &vias {
        msg.delete(v.line.clone())?;
    }
    if msg.is_ack() {
        // An ACK is never a transaction of its own: an ACK for a 2xx is
        // relayed statelessly right away, an ACK for a negative reply is
        // absorbed by tm (and must keep its Via for tm's matching).
        if !tm::ack_is_absorbed(msg)? {
            via_swap::suppress_top_via_update(msg)?;
        }
    } else {
        tm::hide_transaction_of(msg)?;
    }
    LAST_HIDDEN.set(id);
    Ok(true)
}

/// `topos_reply()`: the reply goes upstream with the sender's own Via stack.
///
/// tm restores the stack of every reply of a hidden transaction when it
/// matches the reply (tm callback), so a reply can never leave without it.
/// In a named reply route this call finds the transaction and makes sure;
/// in the core `onreply_route`, which runs before tm has matched the reply,
/// there is nothing to do yet and it returns true.
pub fn topos_reply(msg: &mut SipMsg) -> Result<bool> {
    if !msg.is_reply() {
        return Err(Error::new("topos_reply() called for a request"));
    }
    if current_route() == Route::TmOnReply {
        if let Some(t) = Transaction::current() {
            if t.is_hidden() {
                restore_reply(&t, msg)?;
            }
        }
    }
    Ok(true)
}

/// Puts the original Via stack of `t`'s request under Kamailio's own Via in
/// `reply` (tm removes Kamailio's Via when it relays the reply upstream).
pub fn restore_reply(t: &Transaction, reply: &mut SipMsg) -> Result<()> {
    // tm never relays a 100 Trying.
    if reply.status() == 100 {
        return Ok(());
    }
    let id = reply.identity();
    if LAST_RESTORED.get() == id {
        return Ok(());
    }
    let request = t
        .request()
        .ok_or_else(|| Error::new("transaction has no request"))?;
    let update = request.top_via_update()?;
    let block = restored_via_block(request.buf(), update.as_update())?;

    let vias = via_fields(reply.buf())?;
    let first = vias
        .first()
        .ok_or_else(|| Error::new("reply has no Via header"))?;
    // Only Kamailio's own Via may come back; anything the far side added
    // next to it is dropped. tm removes the first via-parm itself: if the
    // first field holds more (or cannot be read), remove all of it.
    let first_has_more = parse_via_value(reply.buf(), first.value.clone())
        .map(|bodies| bodies.len() > 1)
        .unwrap_or(true);
    if first_has_more {
        reply.delete(first.line.clone())?;
    }
    for v in &vias[1..] {
        reply.delete(v.line.clone())?;
    }
    reply.insert(first.line.end, &block)?;
    LAST_RESTORED.set(id);
    Ok(())
}
