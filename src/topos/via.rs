//! Via hiding: the request leaves with Kamailio's Via only; every reply of
//! the transaction gets the original stack back from `t->uas.request`.

use crate::error::{Error, Result};
use crate::ffi::msg::SipMsg;
use crate::ffi::tm::Transaction;
use crate::sip::headers::via_fields;
use crate::sip::restore::restored_via_block;
use crate::sip::via::parse_via_value;

/// Deletes every Via header of a request (Kamailio adds its own on relay).
pub fn hide_request_vias(msg: &mut SipMsg) -> Result<()> {
    let vias = via_fields(msg.buf())?;
    if vias.is_empty() {
        return Err(Error::new("request has no Via header"));
    }
    for v in &vias {
        msg.delete(v.line.clone())?;
    }
    Ok(())
}

/// Puts the original Via stack of `t`'s request under Kamailio's own Via in
/// `reply` (tm removes Kamailio's Via when it relays the reply upstream).
pub fn restore_reply_vias(t: &Transaction, reply: &mut SipMsg) -> Result<()> {
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
    reply.insert(first.line.end, &block)
}
