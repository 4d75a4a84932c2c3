//! Call transfer across the hiding boundary (RFC 3515 REFER, RFC 3891
//! Replaces, RFC 5589 attended transfer).
//!
//! A transferor A, in call 1 with B and call 2 with C, sends B a REFER
//! whose Refer-To is C's masked Contact (a token of this Kamailio) with a
//! Replaces naming call 2 as A knows it. B then sends an INVITE to that
//! URI. Without this module's help the INVITE would be relayed to
//! Kamailio itself until Max-Forwards ran out. Here:
//!
//! - the REFER, when it passes (`refer`): a Refer-To naming a token must
//!   carry a Replaces of the token's dialog. A sealed token is opened with
//!   that dialog (and, with `bind_source`, the REFER's source, the party
//!   the token was given to) and replaced by a *transfer token*: the same
//!   side's state, bound to the dialog the Replaces names and to nothing
//!   else, opening only the INVITE that replaces that dialog, for
//!   `TRANSFER_TTL`. A stored token is checked against its record and
//!   replaced by its dialog's transfer token (`token::transfer_token`).
//!   A Refer-To that names a token but cannot be mapped
//!   refuses the REFER; one that names none passes unchanged.
//! - the INVITE (`invite`): its Request-URI token opens only with its
//!   Replaces; it is sent to the side the token addresses (its target,
//!   through its route set), hidden as a new dialog (new tokens, its own
//!   bill), and its Replaces names the dialog as that side knows it (the
//!   Call-ID masked or not). Without a Replaces, or with one of another
//!   dialog, it is refused and changes nothing: a party that learnt the
//!   token cannot open new calls with it.
//! - an INVITE to no token whose Replaces names a Call-ID this Kamailio
//!   masked (call pickup from the callee's side: `replaces_from_outside`)
//!   gets the original Call-ID when it goes to that dialog's caller side;
//!   any other passes unchanged.
//! - a NOTIFY's `message/sipfrag` body is cut to its status line
//!   (`sipfrag`); one without a status line is refused.
//!
//! Everything here runs only for INVITEs without To-tag whose Request-URI
//! is a token at this Kamailio or that carry a Replaces, REFERs, and
//! NOTIFYs with a sipfrag body: calls without transfer pay one header-name
//! comparison per header of their INVITE.

use super::sealed_dialog::{caller_call_id, masked_call_id, now, seal_err};
use crate::config::TokenMode;
use crate::crypto::keys::KeyRing;
use crate::dialog::plan;
use crate::dialog::record::{decode_stored, record_key, tag_hash, DialogRecord};
use crate::dialog::sealed::{seal_transfer, Binding, CalleeRoute, SideState, TokenText};
use crate::dialog::token::{
    parse_token, parse_transfer_token, transfer_secret, transfer_token, DialogId, Secret, Side,
};
use crate::dialog::token_uri::{find_token, TokenPlace};
use crate::error::{Error, Result};
use crate::ffi::msg::{is_kamailio_uri, SipMsg};
use crate::log_text::printable;
use crate::sip::edit::Edit;
use crate::sip::headers::{HeaderField, Headers};
use crate::sip::name_addr::{entry_uri, uri_host_port};
use crate::sip::replaces::{parse_refer_target, parse_replaces, Replaces, MAX_REFER_TO};
use crate::sip::request_line::request_line;
use crate::sip::sipfrag::{is_sipfrag, status_line_len};
use crate::state::{self, with_store};
use crate::store::state as store_state;
use crate::token_keys::with_ring;
use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

/// How long a Refer-To's transfer token opens after its REFER passed: the
/// transferee's INVITE follows at once, or after its user accepted.
pub const TRANSFER_TTL: Duration = Duration::from_secs(300);

/// A token a URI presents.
enum Presented {
    Sealed(TokenText),
    Stored(StoredToken),
}

/// A stored dialog's token: the dialog's own (`<id>a|b<secret>`) or its
/// transfer token (`<id>c|d<derived>`).
struct StoredToken {
    id: DialogId,
    side: Side,
    secret: Secret,
    transfer: bool,
}

impl Presented {
    fn side(&self) -> Side {
        match self {
            Presented::Sealed(t) => t.side(),
            Presented::Stored(t) => t.side,
        }
    }
}

/// The token in a URI's user part, if it is one (sealed tokens only in
/// sealed mode, which keeps dialogs too large for a token in the store).
fn token_of(user: &str) -> Result<Option<Presented>> {
    if state::config()?.token_mode == TokenMode::Sealed {
        if let Some(t) = TokenText::parse(user) {
            return Ok(Some(Presented::Sealed(t)));
        }
    }
    let stored = |(id, side, secret), transfer| {
        Presented::Stored(StoredToken {
            id,
            side,
            secret,
            transfer,
        })
    };
    Ok(parse_token(user)
        .map(|t| stored(t, false))
        .or_else(|| parse_transfer_token(user).map(|t| stored(t, true))))
}

/// The token a URI (a Request-URI, a Refer-To's) names at this Kamailio,
/// and its text: found where routing finds it (`token_uri::find_token`:
/// the `contact_param` parameter, else the user part, which must then be
/// at this server). None: the URI names no token here.
fn token_here(uri: &str) -> Result<Option<(Presented, &str)>> {
    let Some((text, place)) = find_token(uri, &state::config()?.contact_param) else {
        return Ok(None);
    };
    let Some(token) = token_of(text)? else {
        return Ok(None);
    };
    if place == TokenPlace::User && !is_kamailio_uri(uri) {
        return Ok(None);
    }
    Ok(Some((token, text)))
}

/// The side a token addresses (C, the transfer target), as a transfer
/// needs it.
struct Target {
    /// C's remote target.
    target: String,
    /// Where C's messages came from (`route_to_source`; empty otherwise).
    hop: String,
    /// The route set toward C, nearest first; None when it is not known
    /// here (a sealed token whose route set did not fit it).
    route: Option<Vec<String>>,
    /// The Call-ID as C knows it.
    call_id: String,
}

/// The binding parts a Replaces gives, for a token addressing `side`: the
/// Call-ID as the caller knows it, the caller's tag, the callee's tag. The
/// Replaces is the dialog as the transfer target (the side the token
/// addresses) knows it: its own tag is the to-tag.
fn replaces_binding(ring: &KeyRing, side: Side, rep: &Replaces) -> (String, String, String) {
    match side {
        // C is the callee; the other party, the caller, knows the
        // caller's Call-ID.
        Side::Callee => (
            rep.call_id.to_string(),
            rep.from_tag.to_string(),
            rep.to_tag.to_string(),
        ),
        // C is the caller; the other party knows the callee's Call-ID,
        // masked with mask_callid.
        Side::Caller => (
            caller_call_id(ring, rep.call_id).0,
            rep.to_tag.to_string(),
            rep.from_tag.to_string(),
        ),
    }
}

/// Opens a sealed token for the dialog `rep` names; `source`: the IP of
/// whoever presents it. The state and the caller's Call-ID, or why not.
fn open_sealed(
    ring: &KeyRing,
    token: &TokenText,
    rep: &Replaces,
    source: &str,
) -> std::result::Result<(SideState, String), String> {
    let (call_id, caller_tag, callee_tag) = replaces_binding(ring, token.side(), rep);
    let binding = Binding {
        call_id: call_id.as_bytes(),
        caller_tag: caller_tag.as_bytes(),
        callee_tag: token.binds_callee_tag().then_some(callee_tag.as_bytes()),
        source: token.binds_source().then_some(source.as_bytes()),
    };
    match token.open_for_transfer(ring, &binding, now()) {
        Ok(s) => Ok((s, call_id)),
        Err(_) if token.binds_source() => Err(format!(
            "it does not open for the dialog its Replaces names (Call-ID {}), or it is bound \
             to the address of the party it was given to (bind_source): a transferee presents \
             the transfer token this Kamailio puts in the Refer-To when the REFER passes it",
            printable(rep.call_id)
        )),
        Err(_) => Err(format!(
            "it does not open for the dialog its Replaces names (another dialog, or an \
             expired or forged token; Call-ID {})",
            printable(rep.call_id)
        )),
    }
}

/// Constant-time comparison of two secrets.
fn same_secret(a: &Secret, b: &Secret) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The stored dialog a stored token and a Replaces name, if they fit
/// each other and it lives. `source`: the IP the token comes from. A
/// dialog token is bound to it with `bind_source` (as in-dialog requests
/// and sealed tokens are: it must come from the party it was given to); a
/// transfer token is not (the transferee presents it).
fn stored_dialog(
    token: &StoredToken,
    rep: &Replaces,
    source: &str,
) -> Result<std::result::Result<DialogRecord, String>> {
    let (id, side) = (&token.id, token.side);
    let callee_tag = match side {
        Side::Callee => rep.to_tag,
        Side::Caller => rep.from_tag,
    };
    let key = record_key(&id.hex(), tag_hash(callee_tag));
    let raw = match with_store("topos_request", |s| s.get(&key)) {
        None => return Err(Error::Storage("dialog storage unavailable")),
        Some(None) => {
            return Ok(Err(format!(
                "its dialog {} is unknown or expired (Replaces Call-ID {})",
                id.hex(),
                printable(rep.call_id)
            )))
        }
        Some(Some(raw)) => raw,
    };
    let (record_state, rec) = decode_stored(&raw).map_err(Error::UnreadableDialog)?;
    if record_state == store_state::ENDED {
        return Ok(Err(format!(
            "its dialog {} has ended (Replaces Call-ID {})",
            id.hex(),
            printable(rep.call_id)
        )));
    }
    // The other party's view: its Call-ID, its tag (from-tag), C's tag.
    let (call_id, other_tag, target_tag) = match side {
        Side::Callee => (&rec.call_id, &rec.caller_tag, &rec.callee_tag),
        Side::Caller => (&rec.callee_call_id, &rec.callee_tag, &rec.caller_tag),
    };
    let secret = if token.transfer {
        transfer_secret(rec.secrets.of(side))
    } else {
        *rec.secrets.of(side)
    };
    let fits = same_secret(&token.secret, &secret)
        && call_id == rep.call_id
        && other_tag == rep.from_tag
        && target_tag == rep.to_tag;
    if !fits {
        return Ok(Err(format!(
            "it does not fit the dialog its Replaces names (dialog {}, Call-ID {})",
            id.hex(),
            printable(rep.call_id)
        )));
    }
    // The party a dialog token was given to: the other side.
    let given_to = match side {
        Side::Callee => &rec.caller_source,
        Side::Caller => &rec.callee_source,
    };
    if !token.transfer && state::config()?.bind_source && given_to != source {
        return Ok(Err(format!(
            "it is bound to the address of the party it was given to (bind_source; dialog {}, \
             Call-ID {}): a transferee presents the transfer token this Kamailio puts in the \
             Refer-To when the REFER passes it",
            id.hex(),
            printable(rep.call_id)
        )));
    }
    Ok(Ok(rec))
}

fn stored_target(rec: DialogRecord, side: Side) -> Result<Target> {
    let route_to_source = state::config()?.route_to_source;
    let (target, route, hop, call_id) = match side {
        Side::Callee => (
            rec.callee_contact,
            rec.callee_route,
            rec.callee_hop,
            rec.callee_call_id,
        ),
        Side::Caller => (
            rec.caller_contact,
            rec.caller_route,
            rec.caller_hop,
            rec.call_id,
        ),
    };
    Ok(Target {
        target,
        hop: if route_to_source { hop } else { String::new() },
        route: Some(route),
        call_id,
    })
}

fn sealed_target(ring: &KeyRing, state: SideState, caller_call_id: String) -> Result<Target> {
    let (route, call_id) = match state.side {
        Side::Caller => (Some(state.caller_route), caller_call_id),
        Side::Callee => {
            let route = match state.callee_route {
                CalleeRoute::Empty => Some(Vec::new()),
                CalleeRoute::InToken => Some(state.callee_routes),
                CalleeRoute::InParameter | CalleeRoute::Unknown => None,
            };
            let call_id = match state.mask_key {
                Some(fp) => masked_call_id(ring, fp, &caller_call_id)?,
                None => caller_call_id,
            };
            (route, call_id)
        }
    };
    Ok(Target {
        target: state.target,
        hop: state.target_hop,
        route,
        call_id,
    })
}

/// What a transfer INVITE becomes: its edits (Route, Replaces) and where
/// it goes.
pub struct TransferInvite {
    pub edits: Vec<Edit>,
    pub target: String,
    pub next_hop: Option<String>,
}

/// The Replaces field of a request: exactly one, read (None: none at all).
fn the_replaces<'a>(
    h: Headers<'a>,
) -> std::result::Result<Option<(&'a HeaderField, Replaces<'a>)>, String> {
    let mut fields = h.named("replaces", None);
    let Some(f) = fields.next() else {
        return Ok(None);
    };
    if fields.next().is_some() {
        return Err("an INVITE with more than one Replaces".into());
    }
    let Cow::Borrowed(value) = h.value(f) else {
        return Err("a Replaces that is not UTF-8".into());
    };
    parse_replaces(value)
        .map(|r| Some((f, r)))
        .map_err(|e| e.to_string())
}

/// A dialog-creating INVITE (no To-tag): if its Request-URI is a token of
/// this Kamailio, the transfer it is. None: not a token here (a new call
/// like any other). `Some(Err(why))`: refused, nothing changed.
pub fn invite(
    msg: &SipMsg,
    h: Headers<'_>,
) -> Result<Option<std::result::Result<TransferInvite, String>>> {
    let Some(ruri) = request_line(msg.buf()).and_then(|l| std::str::from_utf8(l.uri).ok()) else {
        return Ok(None);
    };
    let Some((token, _)) = token_here(ruri)? else {
        return Ok(None);
    };
    let (field, rep) = match the_replaces(h) {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Ok(Some(Err(
                "an INVITE to a topos_rs token without a Replaces: a token opens only the \
                 INVITE that replaces its own dialog (a transfer), never a new call"
                    .into(),
            )))
        }
        Err(why) => {
            return Ok(Some(Err(format!(
                "an INVITE to a topos_rs token with {why}"
            ))))
        }
    };
    let side = token.side();
    let target = match &token {
        Presented::Sealed(t) => {
            let source = msg.source_ip();
            let opened = with_ring(|ring| -> Result<_> {
                match open_sealed(ring, t, &rep, &source) {
                    Ok((state, caller_call_id)) => {
                        Ok(Ok(sealed_target(ring, state, caller_call_id)?))
                    }
                    Err(why) => Ok(Err(why)),
                }
            })??;
            match opened {
                Ok(t) => t,
                Err(why) => return Ok(Some(Err(format!("an INVITE to a topos_rs token: {why}")))),
            }
        }
        Presented::Stored(t) => match stored_dialog(t, &rep, &msg.source_ip())? {
            Ok(rec) => stored_target(rec, t.side)?,
            Err(why) => return Ok(Some(Err(format!("an INVITE to a topos_rs token: {why}")))),
        },
    };
    let route = target.route.unwrap_or_else(|| {
        log::info!(
            "transfer to the callee of Call-ID {}: its route set rides only in its \
             dialog's Record-Route (too long for its token, or its token was renewed by its \
             own target refresh): the INVITE goes to its target directly",
            printable(rep.call_id)
        );
        Vec::new()
    });
    let mut edits = plan::route_set(h, &route);
    if target.call_id != rep.call_id {
        let at = field.value.start + rep.call_id_at.start;
        edits.push(Edit::Delete(at..field.value.start + rep.call_id_at.end));
        edits.push(Edit::Insert(at, target.call_id.into_bytes()));
    }
    let next_hop = route
        .first()
        .map(|r| entry_uri(r).to_string())
        .or_else(|| (!target.hop.is_empty()).then_some(target.hop));
    log::debug!(
        "transfer: an INVITE replacing Call-ID {} goes to the {} side",
        printable(rep.call_id),
        match side {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    );
    Ok(Some(Ok(TransferInvite {
        edits,
        target: target.target,
        next_hop,
    })))
}

/// A dialog-creating INVITE that is no transfer here (its Request-URI is
/// no token), with a Replaces: one that names a Call-ID this Kamailio
/// masked (a pickup from the callee's side, which knows the masked one)
/// gets the caller's Call-ID, but only when the INVITE goes to the
/// caller's side (its next hop is the first hop toward the caller):
/// mapped back for any destination, it would tell whoever the INVITE
/// reaches, a party of the callee's side sending it to itself included,
/// the Call-ID mask_callid hides. That takes the dialog's record: stored
/// mode only. A sealed dialog's caller is reached by its masked Contact,
/// whose token proves the direction (`invite`). Any other Replaces passes
/// unchanged.
pub fn replaces_from_outside(msg: &SipMsg, h: Headers<'_>) -> Result<Vec<Edit>> {
    let cfg = state::config()?;
    if cfg.token_mode != TokenMode::Stored || !cfg.mask_callid {
        return Ok(Vec::new());
    }
    let Ok(Some((field, rep))) = the_replaces(h) else {
        return Ok(Vec::new());
    };
    if !is_dialog_id(rep.call_id) {
        return Ok(Vec::new());
    }
    let Some(rec) = stored_masked_dialog(&rep) else {
        return Ok(Vec::new());
    };
    if !msg
        .destination()
        .is_some_and(|d| goes_to_caller_side(&d, &rec))
    {
        log::info!(
            "an INVITE whose Replaces names the masked Call-ID {} goes elsewhere than that \
             dialog's caller side: its Replaces passes unchanged",
            printable(rep.call_id)
        );
        return Ok(Vec::new());
    }
    let at = field.value.start + rep.call_id_at.start;
    Ok(vec![
        Edit::Delete(at..field.value.start + rep.call_id_at.end),
        Edit::Insert(at, rec.call_id.into_bytes()),
    ])
}

/// A stored-mode masked Call-ID: its dialog's id, 32 lowercase hex digits.
fn is_dialog_id(call_id: &str) -> bool {
    call_id.len() == 32
        && call_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The stored dialog whose masked Call-ID (its id) and tags a Replaces
/// names (either tag may be the callee's: the Replaces is written for
/// whichever side receives it).
fn stored_masked_dialog(rep: &Replaces) -> Option<DialogRecord> {
    for callee_tag in [rep.to_tag, rep.from_tag] {
        let key = record_key(rep.call_id, tag_hash(callee_tag));
        let Some(Some(raw)) = with_store("topos_request", |s| s.get(&key)) else {
            continue;
        };
        let Ok((record_state, rec)) = decode_stored(&raw) else {
            continue;
        };
        let tags = [rec.caller_tag.as_str(), rec.callee_tag.as_str()];
        if record_state != store_state::ENDED
            && rec.callee_call_id == rep.call_id
            && rec.callee_tag == callee_tag
            && tags.contains(&rep.to_tag)
            && tags.contains(&rep.from_tag)
        {
            return Some(rec);
        }
    }
    None
}

/// True if `destination` (a URI) is the first hop toward the caller of
/// `rec`: its nearest Record-Route entry, or where its INVITE came from,
/// or its Contact.
fn goes_to_caller_side(destination: &str, rec: &DialogRecord) -> bool {
    let hop = |uri: &str| {
        uri_host_port(uri).map(|(host, port)| (host.to_ascii_lowercase(), port.unwrap_or(5060)))
    };
    let Some(dest) = hop(destination) else {
        return false;
    };
    let first = rec.caller_route.first().map(|r| entry_uri(r));
    [
        first,
        Some(rec.caller_hop.as_str()),
        Some(rec.caller_contact.as_str()),
    ]
    .into_iter()
    .flatten()
    .filter_map(hop)
    .any(|h| h == dest)
}

/// A REFER: each Refer-To that names a token of this Kamailio must carry a
/// Replaces of that token's dialog; a sealed token is replaced by a
/// transfer token. The edits, or why the REFER is refused.
pub fn refer(msg: &SipMsg, h: Headers<'_>) -> Result<std::result::Result<Vec<Edit>, String>> {
    let fields: Vec<&HeaderField> = h.named("refer-to", Some("r")).collect();
    let mut edits = Vec::new();
    for f in &fields {
        let value = h.value(f);
        let Some(t) = parse_refer_target(&value) else {
            continue; // not a SIP URI with a user: names no token
        };
        let Some((token, text)) = token_here(t.uri)? else {
            continue;
        };
        // Where the token's text sits in the message (`text` is a slice of
        // `value`; used only when `value` is the message's own bytes).
        let start = f.value.start + (text.as_ptr() as usize - value.as_ptr() as usize);
        let at = start..start + text.len();
        if fields.len() > 1 {
            return Ok(Err(
                "a REFER with more than one Refer-To, one naming a topos_rs \
                           token"
                    .into(),
            ));
        }
        if value.len() > MAX_REFER_TO {
            return Ok(Err(format!(
                "an over-long Refer-To ({} bytes, at most {MAX_REFER_TO}) naming a topos_rs \
                 token",
                value.len()
            )));
        }
        let Cow::Borrowed(_) = value else {
            return Ok(Err(
                "a Refer-To that is not UTF-8 naming a topos_rs token".into()
            ));
        };
        let decoded = match &t.replaces {
            None => {
                return Ok(Err(
                    "a Refer-To naming a topos_rs token without a Replaces: a \
                               token opens only the INVITE that replaces its own dialog \
                               (an attended transfer)"
                        .into(),
                ))
            }
            Some(Err(())) => {
                return Ok(Err(
                    "a Refer-To naming a topos_rs token with a Replaces that \
                               does not decode"
                        .into(),
                ))
            }
            Some(Ok(d)) => d,
        };
        let rep = match parse_replaces(decoded) {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("a Refer-To naming a topos_rs token with {e}"))),
        };
        match &token {
            Presented::Sealed(tok) => {
                let source = msg.source_ip();
                let sealed = with_ring(|ring| -> Result<_> {
                    let (mut state, caller_call_id) = match open_sealed(ring, tok, &rep, &source) {
                        Ok(o) => o,
                        Err(why) => return Ok(Err(why)),
                    };
                    let (_, caller_tag, callee_tag) = replaces_binding(ring, state.side, &rep);
                    state.expires = state
                        .expires
                        .min((now() + TRANSFER_TTL.as_secs()).min(u32::MAX as u64) as u32);
                    let binding = Binding {
                        call_id: caller_call_id.as_bytes(),
                        caller_tag: caller_tag.as_bytes(),
                        callee_tag: Some(callee_tag.as_bytes()),
                        source: None,
                    };
                    Ok(Ok(
                        seal_transfer(ring, &state, &binding).ok_or_else(seal_err)?
                    ))
                })??;
                let transfer_token = match sealed {
                    Ok(t) => t,
                    Err(why) => {
                        return Ok(Err(format!("a Refer-To naming a topos_rs token: {why}")))
                    }
                };
                edits.push(Edit::Delete(at.clone()));
                edits.push(Edit::Insert(at.start, transfer_token.into_bytes()));
            }
            Presented::Stored(tok) => {
                if let Err(why) = stored_dialog(tok, &rep, &msg.source_ip())? {
                    return Ok(Err(format!("a Refer-To naming a topos_rs token: {why}")));
                }
                if !tok.transfer {
                    let transfer = transfer_token(&tok.id, tok.side, &tok.secret);
                    edits.push(Edit::Delete(at.clone()));
                    edits.push(Edit::Insert(at.start, transfer.into_bytes()));
                }
            }
        }
    }
    Ok(Ok(edits))
}

/// A NOTIFY: a `message/sipfrag` body beyond its status line (the
/// transfer target's Via, Contact, Record-Route ...) is cut to the status
/// line. The byte range to delete (None: nothing to cut), or why the
/// NOTIFY is refused (a sipfrag without a status line, or encoded).
pub fn sipfrag(msg: &SipMsg, h: Headers<'_>) -> std::result::Result<Option<Range<usize>>, String> {
    let Some(ct) = h.named("content-type", Some("c")).next() else {
        return Ok(None);
    };
    if !is_sipfrag(&h.value(ct)) {
        return Ok(None);
    }
    let buf = msg.buf();
    let eoh = h.end_of_headers();
    let body_start = if buf[eoh..].starts_with(b"\r\n") {
        eoh + 2
    } else {
        eoh + 1
    }
    .min(buf.len());
    let body = &buf[body_start..];
    if body.is_empty() {
        return Ok(None);
    }
    let encoded = h
        .named("content-encoding", Some("e"))
        .any(|f| !h.value(f).trim().eq_ignore_ascii_case("identity"));
    if encoded {
        return Err(
            "a NOTIFY whose message/sipfrag body has a Content-Encoding: it cannot \
                    be cut to its status line"
                .into(),
        );
    }
    match status_line_len(body) {
        None => Err("a NOTIFY whose message/sipfrag body does not start with a status line".into()),
        Some(n) if n == body.len() => Ok(None),
        Some(n) => Ok(Some(body_start + n..buf.len())),
    }
}
