//! Via hiding: the request leaves with Kamailio's Via only; every reply of
//! the transaction gets the original stack back from `t->uas.request`.

use crate::error::{Error, Result};
use crate::ffi::msg::SipMsg;
use crate::sip::edit::Edit;
use crate::sip::headers::Headers;
use crate::sip::restore::restored_via_block;
use crate::sip::via::parse_via_value;
use crate::topos::ReplyParts;

/// Deletes every Via header of a request (Kamailio adds its own on relay).
/// The caller checked first that the replies can get the stack back
/// (`check_restorable`).
pub fn hide_request_vias(msg: &mut SipMsg, h: Headers<'_>) -> Result<()> {
    let edits: Vec<Edit> = h.vias().map(|v| Edit::Delete(v.line.clone())).collect();
    if edits.is_empty() {
        return Err(Error::Malformed("request has no Via header"));
    }
    msg.apply(edits)
}

/// Puts the original Via stack of the transaction's request under
/// Kamailio's own Via in `reply` (tm removes Kamailio's Via when it relays
/// the reply upstream).
pub fn restore_reply_vias(parts: &ReplyParts, reply: &mut SipMsg) -> Result<()> {
    let update = parts.request.top_via_update()?;
    let block = restored_via_block(parts.request_headers, update.as_update())?;

    let h = parts.reply_headers;
    let mut vias = h.vias();
    let first = vias
        .next()
        .ok_or(Error::Malformed("reply has no Via header"))?;
    // Only Kamailio's own Via may come back; anything the far side added
    // next to it is dropped. tm removes the first via-parm itself: if the
    // first field holds more (or cannot be read), remove all of it.
    let first_has_more = parse_via_value(h.msg, first.value.clone())
        .map(|bodies| bodies.len() > 1)
        .unwrap_or(true);
    let mut edits = Vec::new();
    if first_has_more {
        edits.push(Edit::Delete(first.line.clone()));
    }
    edits.extend(vias.map(|v| Edit::Delete(v.line.clone())));
    edits.push(Edit::Insert(first.line.end, block));
    reply.apply(edits)
}
