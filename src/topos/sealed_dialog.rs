//! Dialog hiding with sealed tokens (`token_mode` "sealed"): each masked
//! Contact carries the routing state of the side it addresses, sealed and
//! bound to the dialog (crate::dialog::sealed); the route set toward the
//! callee rides, sealed, in Kamailio's own Record-Route entry as the caller
//! sees it. Nothing here reads or writes the store: not the INVITE, its
//! replies, the ACK, a re-INVITE or an UPDATE. Every token a request or
//! reply carries in its Contact is made fresh, with a new expiry, so a call
//! kept up by target refreshes (session timers) keeps routing.

use super::dialog_hiding::{
    effective_contact, method_is, reply_contact_hostport, InDialog, EARLY_TTL,
};
use crate::config::{ContactMode, ModuleConfig};
use crate::crypto::keys::KeyRing;
use crate::crypto::mask;
use crate::dialog::knobs::{DialogKnobs, SideKnobs};
use crate::dialog::plan::{self, MaskedContact, RouteCarrier, Shown};
use crate::dialog::sealed::{
    open_route, seal_route, seal_token, token_text_len, Binding, CalleeRoute, Refusal, SideState,
    TokenText,
};
use crate::dialog::token::{DialogId, Secrets, Side};
use crate::dialog::token_uri::token_in_uri;
use crate::error::{Error, Result};
use crate::ffi::msg::{is_kamailio_uri, SipMsg};
use crate::ffi::tx_state::{Kind, NewTxState, TxState};
use crate::log_text::printable;
use crate::message_context;
use crate::sip::dialog_ids::DialogIds;
use crate::sip::headers::Headers;
use crate::sip::name_addr::entry_uri;
use crate::state;
use crate::stats;
use crate::token_keys::with_ring;
use crate::topos::shown_contact::{self, is_sips};
use crate::topos::tx_dialog::{new_state, set_in_dialog, TxDialog};
use crate::topos::ReplyParts;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest masked Contact URI a sealed token may make in the INVITE;
/// a caller side that would need more is kept in the store (issue 20: 300
/// bytes with up to 2 Record-Route entries a side).
pub const MAX_CONTACT_URI: usize = 300;

/// Room for the `host:port;transport=...` of a Contact whose socket is
/// filled in when the request leaves (IPv6 with a port and a transport).
const SEND_SOCKET_ROOM: usize = 62;

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn expiry(ttl: Duration) -> u32 {
    (now() + ttl.as_secs()).min(u32::MAX as u64) as u32
}

pub(super) fn seal_err() -> Error {
    Error::Kamailio("cannot seal a dialog token (no randomness)")
}

/// What a masked Contact URI holds besides its token: the scheme and `@`,
/// the host part (`hostport`, or the room any socket needs for the
/// send-socket mark, filled in later) and, with `contact_mode` 1, the
/// party's own user part (`own_contact`'s) and the parameter's name.
fn contact_room(cfg: &ModuleConfig, own_contact: Option<&str>, hostport: &str) -> usize {
    let host = if hostport.contains(crate::sip::edit::SEND_SOCKET) {
        SEND_SOCKET_ROOM
    } else {
        hostport.len()
    };
    let user = match cfg.contact_mode {
        ContactMode::Token => 0,
        ContactMode::OwnUser => {
            own_contact
                .and_then(crate::sip::name_addr::uri_user)
                .map_or(0, str::len)
                + cfg.contact_param.len()
                + 2
        }
    };
    "sips:@".len() + host + user
}

/// `state`'s token, bound by `binding`. A state that carries the route set
/// toward the callee (`CalleeRoute::InToken`) is sealed without it when
/// the masked Contact (`room`: all of its URI but the token, see
/// `contact_room`) would pass `MAX_CONTACT_URI`. Sealed once in the common
/// case.
fn seal_within_bound(
    ring: &KeyRing,
    state: &mut SideState,
    binding: &Binding,
    room: usize,
) -> Result<String> {
    let token = seal_token(ring, state, binding).ok_or_else(seal_err)?;
    if state.callee_route != CalleeRoute::InToken || token.len() + room <= MAX_CONTACT_URI {
        return Ok(token);
    }
    state.callee_route = CalleeRoute::InParameter;
    state.callee_routes.clear();
    seal_token(ring, state, binding).ok_or_else(seal_err)
}

/// The masked Call-ID of `call_id` under the key `fingerprint` names.
pub(super) fn masked_call_id(ring: &KeyRing, fingerprint: u8, call_id: &str) -> Result<String> {
    ring.candidates(fingerprint)
        .next()
        .map(|k| mask::mask(k, call_id.as_bytes()))
        .ok_or(Error::Config(
            "the key that masks this dialog's Call-ID is no longer in token_key_file",
        ))
}

/// The Call-ID as the caller's side knows it, from one a request carries:
/// a masked one (from the callee's side) is unmasked.
pub(super) fn caller_call_id(ring: &KeyRing, call_id: &str) -> (String, bool) {
    match mask::unmask(ring, call_id).and_then(|b| String::from_utf8(b).ok()) {
        Some(c) => (c, true),
        None => (call_id.to_string(), false),
    }
}

/// The Call-ID the callee side knows with mask_callid in sealed mode (the
/// dialogs kept in the store in that mode too): the deterministic mask of
/// the caller's, so a request Kamailio sends itself can be given it without
/// any store. Returns the masking key's fingerprint with it.
pub fn deterministic_callee_call_id(caller_call_id: &str) -> Result<(u8, String)> {
    with_ring(|ring| {
        (
            ring.sealing().fingerprint(),
            mask::mask(ring.sealing(), caller_call_id.as_bytes()),
        )
    })
}

/// The callee side's Call-ID a transaction state names (with
/// `set_mask_key`), for the caller's Call-ID.
pub fn masked_for(st: &TxState, caller_call_id: &str) -> Result<Option<String>> {
    match st.mask_key() {
        Some(fp) => with_ring(|ring| masked_call_id(ring, fp, caller_call_id))?.map(Some),
        None => Ok(None),
    }
}

/// The caller's side of a dialog-creating request, as its token carries
/// it, and the token's binding parts.
struct CallerToken {
    state: SideState,
    call_id: String,
    caller_tag: String,
}

fn caller_token(msg: &SipMsg, h: Headers<'_>, mask_key: Option<u8>) -> Result<CallerToken> {
    let cfg = state::config()?;
    let caller = plan::caller_side(h)?;
    let ids = DialogIds::from_headers(h)?;
    // The Contact as the whole script left it (nathelper's changes,
    // before or after topos_request(), included).
    let target = effective_contact(msg, h, Some(caller.contact.clone())).unwrap_or(caller.contact);
    Ok(CallerToken {
        state: SideState {
            side: Side::Caller,
            expires: expiry(cfg.dialog_expire),
            mask_key,
            callee_route: CalleeRoute::Unknown,
            target,
            target_hop: if cfg.route_to_source {
                msg.source_uri()
            } else {
                String::new()
            },
            target_source: if cfg.bind_source {
                msg.source_ip()
            } else {
                String::new()
            },
            caller_route: caller.route,
            callee_routes: Vec::new(),
        },
        call_id: caller.call_id,
        caller_tag: ids.from.tag.as_deref().unwrap_or_default().to_string(),
    })
}

impl CallerToken {
    fn binding(&self) -> Binding<'_> {
        // The callee's tag and address do not exist yet.
        Binding {
            call_id: self.call_id.as_bytes(),
            caller_tag: self.caller_tag.as_bytes(),
            callee_tag: None,
            source: None,
        }
    }
}

/// A dialog-creating request: the caller side's Record-Routes and Contact
/// removed, the Call-ID masked with mask_callid; the caller's token goes
/// into its Contact when tm builds each branch (`caller_contact`), from
/// the Contact as the script left it. None (nothing changed) if the token
/// would make the Contact longer than `MAX_CONTACT_URI`: the caller keeps
/// such a dialog in the store.
pub fn hide_initial(msg: &mut SipMsg, h: Headers<'_>) -> Result<Option<NewTxState>> {
    let cfg = state::config()?;
    let (mask_key, token_len, callee_call_id) = with_ring(|ring| -> Result<_> {
        let mask_key = cfg.mask_callid.then(|| ring.sealing().fingerprint());
        let caller = caller_token(msg, h, mask_key)?;
        let token_len = token_text_len(&caller.state);
        let callee_call_id =
            mask_key.map(|_| mask::mask(ring.sealing(), caller.call_id.as_bytes()));
        Ok((mask_key, token_len, callee_call_id))
    })??;
    let hostport_room = cfg
        .contact_host
        .as_ref()
        .map_or(SEND_SOCKET_ROOM, String::len);
    // contact_mode 1 shows the caller's own user part, and the token goes
    // into the parameter.
    let user_room = match cfg.contact_mode {
        crate::config::ContactMode::Token => 0,
        crate::config::ContactMode::OwnUser => {
            let own = plan::contact_uri(h).unwrap_or_default();
            crate::sip::name_addr::uri_user(&own).map_or(0, str::len) + cfg.contact_param.len() + 2
        }
    };
    let scheme = if msg.relayed_ruri_is_sips() {
        "sips:@"
    } else {
        "sip:@"
    };
    if scheme.len() + token_len + hostport_room + user_room > MAX_CONTACT_URI {
        return Ok(None);
    }
    msg.apply(plan::initial_request(
        h,
        Shown::hidden(None),
        callee_call_id.as_deref(),
    ))?;
    let mut st = new_state(
        Kind::Initial,
        DialogId([0; 16]),
        Secrets::default(),
        &DialogKnobs::default(),
    )?;
    st.get_mut().set_sealed();
    st.get_mut().set_mask_key(mask_key);
    st.get_mut().set_contact_pending();
    Ok(Some(st))
}

/// tm is about to build a branch of a sealed dialog-creating request: the
/// caller's masked Contact goes in, with a token made from the Contact as
/// the script left it (this branch only: tm drops what is added here after
/// building it, and a failure_route branch gets its own).
pub fn caller_contact(req: &mut SipMsg) -> Result<()> {
    let fields = crate::sip::headers::scan_headers(req.buf())?;
    let h = Headers::new(req.buf(), &fields);
    let mask_key = state::config()?
        .mask_callid
        .then(|| with_ring(|r| r.sealing().fingerprint()))
        .transpose()?;
    let caller = caller_token(req, h, mask_key)?;
    let token = with_ring(|ring| seal_token(ring, &caller.state, &caller.binding()))?
        .ok_or_else(seal_err)?;
    let masked = shown_contact::in_request(
        state::config()?,
        token,
        &SideKnobs::default(),
        || plan::contact_uri(h).map(|c| c.into_owned()),
        req.relayed_ruri_is_sips(),
    );
    req.apply(plan::contact_insert(h, &masked))?;
    req.commit()
}

/// A reply to the dialog-creating request, on its way to the caller: a
/// 101-299 with a To-tag and a Contact gets the callee's token (and the
/// route set toward the callee in Kamailio's Record-Route entry); every
/// other reply loses its Contact.
pub fn initial_reply(st: &TxState, parts: &ReplyParts, reply: &mut SipMsg) -> Result<()> {
    let cfg = state::config()?;
    shown_contact::note_reply_choices_of_sealed_dialog(reply);
    let status = reply.status();
    let ids = DialogIds::from_headers(parts.reply_headers)?;
    let caller = plan::caller_side(parts.request_headers)?;
    let callee = plan::callee_side(parts.reply_headers, &is_kamailio_uri);
    let target = effective_contact(reply, parts.reply_headers, callee.contact);
    let restore = st.mask_key().is_some().then_some(caller.call_id.as_str());
    let (Some(callee_tag), Some(target), true) =
        (ids.to.tag.clone(), target, (101..300).contains(&status))
    else {
        // No dialog (yet): nothing to route to, no token.
        let edits = plan::reply_to_caller(
            parts.reply_headers,
            &caller.route,
            Shown::hidden(None),
            restore,
            &is_kamailio_uri,
            false,
            None,
        );
        return reply.apply(edits);
    };
    let caller_tag = ids.from.tag.as_deref().unwrap_or_default();
    let confirmed = (200..300).contains(&status);
    let caller_source = parts.request.source_ip();
    let hostport = reply_contact_hostport(parts.request)?;
    let room = contact_room(
        cfg,
        plan::contact_uri(parts.reply_headers).as_deref(),
        &hostport,
    );
    let (token, route) = with_ring(|ring| -> Result<_> {
        let mut state = SideState {
            side: Side::Callee,
            expires: expiry(if confirmed {
                cfg.dialog_expire
            } else {
                EARLY_TTL
            }),
            mask_key: st.mask_key(),
            callee_route: if callee.route.is_empty() {
                CalleeRoute::Empty
            } else {
                CalleeRoute::InParameter
            },
            target,
            target_hop: if cfg.route_to_source {
                reply.source_uri()
            } else {
                String::new()
            },
            target_source: if cfg.bind_source {
                reply.source_ip()
            } else {
                String::new()
            },
            caller_route: caller.route.clone(),
            callee_routes: Vec::new(),
        };
        // The route set toward the callee rides in the caller's token too
        // when it fits the Contact's size bound: a transfer to the callee
        // (an INVITE from a third party, which never saw this dialog's
        // Record-Route) then goes through the callee's proxies.
        if !callee.route.is_empty() {
            state.callee_route = CalleeRoute::InToken;
            state.callee_routes = callee.route.clone();
        }
        let binding = Binding {
            call_id: caller.call_id.as_bytes(),
            caller_tag: caller_tag.as_bytes(),
            callee_tag: Some(callee_tag.as_bytes()),
            source: cfg.bind_source.then_some(caller_source.as_bytes()),
        };
        let token = seal_within_bound(ring, &mut state, &binding, room)?;
        let route = if callee.route.is_empty() {
            None
        } else {
            let b = Binding {
                source: None,
                ..binding
            };
            Some(seal_route(ring, &callee.route, &b).ok_or_else(seal_err)?)
        };
        Ok((token, route))
    })??;
    let masked = shown_contact::in_reply(
        cfg,
        token,
        &SideKnobs::default(),
        || plan::contact_uri(parts.reply_headers).map(|c| c.into_owned()),
        crate::sip::request_line::request_line(parts.request.buf()).is_some_and(|l| is_sips(l.uri)),
        parts.request,
    )?;
    let carrier = route.as_deref().map(|sealed| RouteCarrier {
        sealed,
        hostport: &hostport,
    });
    reply.apply(plan::reply_to_caller(
        parts.reply_headers,
        &caller.route,
        Shown::hidden(Some(&masked)),
        restore,
        &is_kamailio_uri,
        true,
        carrier.as_ref(),
    ))?;
    // Counted once per dialog (callee tag), by its first 2xx.
    if confirmed {
        if let Some((slot, _)) = st.note_early(crate::dialog::record::tag_hash(&callee_tag)) {
            if st.confirm(slot) {
                stats::bump(|s| &s.dialogs_created);
            }
        }
    }
    Ok(())
}

/// A request's dialog as its token and Call-ID and tags give it.
struct Opened {
    state: SideState,
    /// The Call-ID as the caller's side knows it.
    caller_call_id: String,
    /// The request carried the callee side's (masked) Call-ID.
    was_masked: bool,
}

/// Opens a sealed token a request presents (`request`: its Call-ID and
/// tags, `source`: the IP it came from).
fn open_presented(
    ring: &KeyRing,
    token: &TokenText,
    ids: &DialogIds,
    source: &str,
) -> std::result::Result<Opened, String> {
    if token.is_transfer() {
        return Err(format!(
            "a transfer token (given in a Refer-To) opens only an INVITE that replaces its \
             dialog, not an in-dialog request (Call-ID {})",
            printable(&ids.call_id)
        ));
    }
    let (caller_call_id, was_masked) = match token.side() {
        Side::Caller => caller_call_id(ring, &ids.call_id),
        Side::Callee => (ids.call_id.to_string(), false),
    };
    let (from, to) = (
        ids.from.tag.as_deref().unwrap_or_default(),
        ids.to.tag.as_deref().unwrap_or_default(),
    );
    // A request to the callee side comes from the caller: its From-tag is
    // the caller's; one to the caller side has them the other way round.
    let (caller_tag, callee_tag) = match token.side() {
        Side::Callee => (from, to),
        Side::Caller => (to, from),
    };
    let binding = Binding {
        call_id: caller_call_id.as_bytes(),
        caller_tag: caller_tag.as_bytes(),
        callee_tag: token.binds_callee_tag().then_some(callee_tag.as_bytes()),
        source: token.binds_source().then_some(source.as_bytes()),
    };
    match token.open(ring, &binding, now()) {
        Ok(state) => Ok(Opened {
            state,
            caller_call_id,
            was_masked,
        }),
        Err(Refusal::Expired) => Err(format!(
            "expired token (Call-ID {})",
            printable(&ids.call_id)
        )),
        Err(Refusal::Forged) => Err(format!(
            "token does not fit this request (forged, of the other side, or with another \
             Call-ID, tags or source; Call-ID {})",
            printable(&ids.call_id)
        )),
    }
}

/// A fresh token for `side` with the Contact `target`, from the state of
/// the token the request presented (`presented`: its dialog, its route
/// knowledge), for a message `side` sent (`sender_msg`: a request, or a
/// reply to one). Bound to the dialog and, with `bind_source`, to
/// `presenter_ip`, the IP of the side that will present it.
#[allow(clippy::too_many_arguments)]
fn fresh_token(
    ring: &KeyRing,
    side: Side,
    presented: &Opened,
    ids: &DialogIds,
    target: String,
    sender_msg: &SipMsg,
    presenter_ip: &str,
    room: usize,
) -> Result<String> {
    let other = presented;
    let cfg = state::config()?;
    // The route set toward the callee rides only in tokens that address
    // the callee (the caller's), and only while it fits.
    let (callee_route, callee_routes) = match (side, other.state.callee_route) {
        (Side::Caller, CalleeRoute::InToken) => (CalleeRoute::InParameter, Vec::new()),
        (_, route) => (route, other.state.callee_routes.clone()),
    };
    let mut state = SideState {
        side,
        expires: expiry(cfg.dialog_expire),
        mask_key: other.state.mask_key,
        callee_route,
        target,
        target_hop: if cfg.route_to_source {
            sender_msg.source_uri()
        } else {
            String::new()
        },
        target_source: if cfg.bind_source {
            sender_msg.source_ip()
        } else {
            String::new()
        },
        caller_route: other.state.caller_route.clone(),
        callee_routes,
    };
    let (from, to) = (
        ids.from.tag.as_deref().unwrap_or_default(),
        ids.to.tag.as_deref().unwrap_or_default(),
    );
    // `ids` are the request's: its From is the request's sender, and the
    // presented token addresses the request's target.
    let request_to_callee = other.state.side == Side::Callee;
    let (caller_tag, callee_tag) = if request_to_callee {
        (from, to)
    } else {
        (to, from)
    };
    let binding = Binding {
        call_id: other.caller_call_id.as_bytes(),
        caller_tag: caller_tag.as_bytes(),
        callee_tag: Some(callee_tag.as_bytes()),
        source: (cfg.bind_source && !presenter_ip.is_empty()).then_some(presenter_ip.as_bytes()),
    };
    seal_within_bound(ring, &mut state, &binding, room)
}

/// An in-dialog request with a sealed token: opened, routed to the side it
/// addresses, the sender's Contact given a fresh token.
pub fn route_in_dialog(
    msg: &mut SipMsg,
    headers: Headers<'_>,
    ids: &DialogIds,
    token: &TokenText,
) -> Result<InDialog> {
    let cfg = state::config()?;
    let source = msg.source_ip();
    let routed = with_ring(|ring| -> Result<std::result::Result<_, String>> {
        let opened = match open_presented(ring, token, ids, &source) {
            Ok(o) => o,
            Err(why) => return Ok(Err(why)),
        };
        let target = opened.state.side;
        // The route set toward the side the request goes to.
        let route = match target {
            Side::Caller => opened.state.caller_route.clone(),
            // The token's own copy: no Route scan and no second opening
            // (the parameter is sealed to this dialog all the same).
            Side::Callee if opened.state.callee_route == CalleeRoute::InToken => {
                opened.state.callee_routes.clone()
            }
            Side::Callee => {
                let b = Binding {
                    call_id: opened.caller_call_id.as_bytes(),
                    caller_tag: ids.from.tag.as_deref().unwrap_or_default().as_bytes(),
                    callee_tag: Some(ids.to.tag.as_deref().unwrap_or_default().as_bytes()),
                    source: None,
                };
                match (plan::route_param(headers), opened.state.callee_route) {
                    (Some(p), _) => match open_route(ring, &p, &b) {
                        Some(r) => r,
                        None => {
                            return Ok(Err(format!(
                                "the route set in its Route header is not this dialog's \
                                 (Call-ID {})",
                                printable(&ids.call_id)
                            )))
                        }
                    },
                    (None, CalleeRoute::InParameter) => {
                        return Ok(Err(format!(
                            "its Route header lacks the dialog's route set (Call-ID {})",
                            printable(&ids.call_id)
                        )))
                    }
                    (None, _) => Vec::new(),
                }
            }
        };
        let new_call_id = match (target, opened.state.mask_key) {
            (Side::Callee, Some(fp)) => Some(masked_call_id(ring, fp, &opened.caller_call_id)?),
            (Side::Caller, _) if opened.was_masked => Some(opened.caller_call_id.clone()),
            _ => None,
        };
        let sender_contact = plan::has_contact(headers)
            .then(|| effective_contact(msg, headers, None))
            .flatten();
        let masked = match sender_contact {
            Some(c) => {
                let own = c.clone();
                let hostport = cfg
                    .contact_host
                    .as_deref()
                    .unwrap_or(crate::sip::edit::SEND_SOCKET);
                let room = contact_room(cfg, Some(&own), hostport);
                // The target side presents the sender's new token.
                let token = fresh_token(
                    ring,
                    other_side(target),
                    &opened,
                    ids,
                    c,
                    msg,
                    &opened.state.target_source,
                    room,
                )?;
                Some(shown_contact::in_request(
                    cfg,
                    token,
                    &SideKnobs::default(),
                    || Some(own),
                    is_sips(opened.state.target.as_bytes()),
                ))
            }
            None => None,
        };
        Ok(Ok((opened, route, new_call_id, masked)))
    })??;
    let (opened, route, new_call_id, masked) = match routed {
        Ok(r) => r,
        Err(why) => return Ok(InDialog::Refused(why)),
    };
    let (edits, _) = plan::in_dialog_request(
        headers,
        &route,
        Shown::hidden(masked.as_ref()),
        new_call_id.as_deref(),
    );
    msg.apply(edits)?;
    let hop = &opened.state.target_hop;
    let next_hop = route
        .first()
        .map(|r| entry_uri(r))
        .or_else(|| (cfg.route_to_source && !hop.is_empty()).then_some(hop.as_str()));
    msg.retarget(&opened.state.target, next_hop)?;
    message_context::write(msg.identity(), |c| {
        c.caller_call_id = Some(opened.caller_call_id.clone())
    });
    if msg.is_ack() {
        return Ok(InDialog::Routed(None, false));
    }
    let mut st = new_state(
        Kind::InDialog,
        DialogId([0; 16]),
        Secrets::default(),
        &DialogKnobs::default(),
    )?;
    set_in_dialog(
        &mut st,
        opened.state.side,
        0,
        method_is(msg, &["INVITE", "UPDATE"]),
    );
    st.get_mut().set_sealed();
    st.get_mut().set_mask_key(opened.state.mask_key);
    st.get_mut().set_bye(method_is(msg, &["BYE"]));
    Ok(InDialog::Routed(Some(st), false))
}

fn other_side(side: Side) -> Side {
    match side {
        Side::Caller => Side::Callee,
        Side::Callee => Side::Caller,
    }
}

/// A reply to an in-dialog request with a sealed token, on its way back to
/// the request's sender: the replier's Contact gets a fresh token (from the
/// request's token, opened again from the transaction's request), the
/// Call-ID is the sender's. If the request's token no longer opens (keys
/// reloaded without its key), the replier's Contact is removed: never
/// shown as it came.
pub fn in_dialog_reply(st: &TxState, parts: &ReplyParts, reply: &mut SipMsg) -> Result<()> {
    let reply_headers = parts.reply_headers;
    let sender_call_id = plan::call_id(parts.request_headers)?;
    let restore = (plan::call_id(reply_headers)? != sender_call_id).then_some(&*sender_call_id);
    let replier = st.target();
    let contact = plan::has_contact(reply_headers)
        .then(|| effective_contact(reply, reply_headers, None))
        .flatten();
    let masked = match contact {
        Some(c) => {
            let request_ids = DialogIds::from_headers(parts.request_headers)?;
            let ruri = crate::sip::request_line::request_line(parts.request.buf())
                .and_then(|l| std::str::from_utf8(l.uri).ok());
            let token = ruri
                .and_then(|uri| token_in_uri(uri, &state::config().ok()?.contact_param))
                .and_then(TokenText::parse);
            let sips = ruri.is_some_and(|u| is_sips(u.as_bytes()));
            let own = c.clone();
            let source = parts.request.source_ip();
            with_ring(|ring| -> Result<Option<MaskedContact>> {
                let Some(Ok(opened)) =
                    token.map(|t| open_presented(ring, &t, &request_ids, &source))
                else {
                    return Ok(None);
                };
                // The request's sender presents the replier's new token.
                let room = contact_room(
                    state::config()?,
                    Some(&own),
                    &reply_contact_hostport(parts.request)?,
                );
                let token = fresh_token(
                    ring,
                    replier,
                    &opened,
                    &request_ids,
                    c,
                    reply,
                    &source,
                    room,
                )?;
                Ok(Some(shown_contact::in_reply(
                    state::config()?,
                    token,
                    &SideKnobs::default(),
                    || Some(own),
                    sips,
                    parts.request,
                )?))
            })??
        }
        None => None,
    };
    let (edits, _) = plan::in_dialog_reply(reply_headers, Shown::hidden(masked.as_ref()), restore);
    reply.apply(edits)
}

/// A BYE of a sealed dialog was answered 2xx: the dialog has ended (once
/// per BYE transaction; retransmissions are absorbed by tm).
pub fn in_dialog_reply_sent(st: &TxState, code: i32) {
    if st.is_bye() && (200..300).contains(&code) {
        stats::bump(|s| &s.dialogs_ended);
    }
}

/// A request Kamailio sends itself into a dialog (event_route
/// [tm:local-request]) with mask_callid: one the dialog module sends to the
/// callee's leg gets the Call-ID that side knows, the deterministic mask
/// of the caller's; one to the caller's leg stays as it is. A request to a
/// leg the dialog module cannot name is left alone: it is one of a dialog
/// topos_rs did not make.
pub fn local_request(msg: &mut SipMsg) -> Result<bool> {
    if !state::config()?.mask_callid || !crate::ffi::dialog_module::goes_to_callee(msg) {
        return Ok(true);
    }
    let fields = crate::sip::headers::scan_headers(msg.buf())?;
    let h = Headers::new(msg.buf(), &fields);
    let call_id = plan::call_id(h)?;
    let masked = with_ring(|ring| mask::mask(ring.sealing(), call_id.as_bytes()))?;
    msg.apply(plan::replace_call_id(h, &masked))?;
    msg.commit()?;
    Ok(true)
}
