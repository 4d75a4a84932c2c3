//! Dialog hiding on live messages: masks Contacts and Record-Routes,
//! stores one record per dialog (per callee tag) when a reply creates or
//! confirms it, and routes in-dialog requests by their token.
//!
//! Store operations for a basic call (INVITE / 180 / 200 / ACK / BYE): the
//! INVITE none, the 180 one `put` (early dialog), the 200 one `put`
//! (confirmed), the ACK one `get_touch`, the BYE one `get_touch` (grace
//! time): 4 in all, 3 without a 180 that carries a Contact.

use crate::dialog::plan;
use crate::dialog::record::{
    binding_offset, decode_stored, encode_stored, record_key, tag_hash, DialogRecord,
};
use crate::dialog::token::{binding, parse_token, DialogId, Secrets, Side};
use crate::dialog::token_uri::token_in_uri;
use crate::error::{Error, Result};
use crate::ffi::msg::{is_kamailio_uri, SipMsg};
use crate::ffi::tx_state::{Kind, NewTxState, TxState, MAX_EARLY};
use crate::log_text::printable;
use crate::message_context;
use crate::sip::dialog_ids::DialogIds;
use crate::sip::headers::Headers;
use crate::sip::name_addr::entry_uri;
use crate::sip::request_line::request_line;
use crate::state::{self, with_store};
use crate::stats;
use crate::store::key::call_digest_hex;
use crate::store::{state as store_state, Guard, Lifecycle, Lived};
use crate::topos::shown_contact::{self, is_sips};
use crate::topos::tx_dialog::{new_state, set_in_dialog, TxDialog};
use crate::topos::ReplyParts;
use std::borrow::Cow;
use std::time::Duration;

/// An early dialog's records live this long without news (a call rings at
/// most this long).
pub(super) const EARLY_TTL: Duration = Duration::from_secs(900);
/// After a BYE a dialog's record stays this long (retransmissions, a BYE
/// re-sent with credentials), then goes.
const BYE_GRACE: Duration = Duration::from_secs(32);

/// The random bytes of a new dialog, in one system call: its id and both
/// sides' secrets.
struct NewDialogRandom([u8; 48]);

impl NewDialogRandom {
    fn draw() -> Result<NewDialogRandom> {
        let mut b = [0u8; 48];
        getrandom::getrandom(&mut b).map_err(Error::NoRandomness)?;
        Ok(NewDialogRandom(b))
    }
    fn part<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.0[at..at + N]);
        out
    }
}

pub(super) fn method_is(msg: &SipMsg, names: &[&str]) -> bool {
    let method = request_line(msg.buf()).map_or(&b""[..], |l| l.method);
    names
        .iter()
        .any(|n| method.eq_ignore_ascii_case(n.as_bytes()))
}

/// INVITE and SUBSCRIBE create dialogs (their Contact must be hidden).
pub fn creates_dialog(msg: &SipMsg) -> bool {
    method_is(msg, &["INVITE", "SUBSCRIBE"])
}

/// `host:port` for a masked Contact in a reply to `request`: the socket the
/// request came in on, which the reply leaves on.
pub(super) fn reply_contact_hostport(request: &SipMsg) -> Result<String> {
    let cfg = state::config()?;
    if let Some(h) = &cfg.contact_host {
        return Ok(h.clone());
    }
    request.local_hostport().ok_or(Error::Config(
        "no local socket for the masked Contact; set contact_host",
    ))
}

/// A dialog-creating request: a new dialog id, the Contact masked, the
/// caller side's Record-Routes removed (and the Call-ID with mask_callid);
/// towards a trusted callee, all of it as it is (the Contact carrying the
/// token if Kamailio record-routes it). The state goes on its
/// transaction; `Initial::to_trusted`: the request leaves with its Vias.
/// `deterministic_mask`: sealed mode's fallback for a dialog kept in the
/// store; with mask_callid the callee side gets the deterministic mask
/// of the caller's Call-ID (as sealed dialogs do), not a random one.
pub fn hide_initial(msg: &mut SipMsg, h: Headers<'_>, deterministic_mask: bool) -> Result<Initial> {
    let cfg = state::config()?;
    // The caller side's part of the dialog record (its Contact and route
    // set) must leave room for the callee side's: a request that could
    // only make an oversized record is refused now, not half set up.
    let caller_side: usize = h
        .named("record-route", None)
        .chain(h.named("contact", Some("m")))
        .map(|f| f.value.len())
        .sum();
    if caller_side > MAX_RECORD / 2 {
        return Err(Error::CallerSideTooLarge {
            bytes: caller_side,
            limit: MAX_RECORD / 2,
        });
    }
    let random = NewDialogRandom::draw()?;
    let id = DialogId::from_random(random.part(0));
    let secrets = Secrets::from_random(random.part(16));
    let knobs = shown_contact::for_new_dialog(msg);
    let masked = shown_contact::in_request(
        cfg,
        id.token(Side::Caller, &secrets),
        &knobs.caller,
        || plan::contact_uri(h).map(Cow::into_owned),
        msg.relayed_ruri_is_sips(),
    );
    let mut st = new_state(Kind::Initial, id, secrets, &knobs)?;
    let to_trusted = knobs.callee.trusted;
    // A trusted callee sees the caller's Call-ID, as without topos_rs.
    let callee_call_id = if !cfg.mask_callid || to_trusted {
        None
    } else if deterministic_mask {
        let (fp, c) = super::sealed_dialog::deterministic_callee_call_id(&plan::call_id(h)?)?;
        st.get_mut().set_mask_key(Some(fp));
        Some(c)
    } else {
        // The dialog id: random, known to both sides already (it is in
        // their tokens), and it leads back to the dialog's records, so a
        // Replaces that names the masked Call-ID (call pickup from the
        // callee's side) is mapped back without an index of its own.
        let c = id.hex();
        st.get_mut().set_callee_call_id(&c);
        Some(c)
    };
    if to_trusted {
        st.get_mut().set_vias_kept();
    }
    let shown = shown_contact::shown(&knobs.callee, &masked);
    let edits = plan::initial_request(h, shown, callee_call_id.as_deref());
    msg.apply(edits)?;
    Ok(Initial {
        state: st,
        to_trusted,
        record_routes_kept: knobs.callee.sees_contacts,
    })
}

/// A dialog-creating request `hide_initial` prepared.
pub struct Initial {
    pub state: NewTxState,
    /// Towards a trusted callee: it leaves with its Vias.
    pub to_trusted: bool,
    /// The callee sees the caller side's Record-Routes.
    pub record_routes_kept: bool,
}

/// The first Contact URI of `msg` as the script left it: changes other
/// modules queued on it (nathelper's `fix_nated_contact()`,
/// `set_contact_alias()`) applied, so in-dialog requests go where the
/// script meant them to. `fallback` (the URI as received) otherwise.
pub(super) fn effective_contact(
    msg: &SipMsg,
    h: Headers<'_>,
    fallback: Option<String>,
) -> Option<String> {
    let Some(range) = plan::contact_uri_range(h) else {
        return fallback;
    };
    let Some(text) = msg.text_with_lumps(range) else {
        return fallback;
    };
    let Ok(text) = String::from_utf8(text) else {
        return fallback;
    };
    // set_contact_alias() puts a bare URI in <> (the brackets are its own).
    let uri = text
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if uri.is_empty() {
        return fallback;
    }
    Some(uri.to_string())
}

/// Largest dialog record stored (both Contacts and route sets): a peer
/// cannot make one record fill the store.
pub const MAX_RECORD: usize = 8192;

/// A reply to a dialog-creating request, on its way to the caller. Every
/// reply is hidden, final failures included; only a 101-299 with a To-tag
/// and a usable Contact stores the dialog.
pub fn initial_reply(st: &TxState, parts: &ReplyParts, reply: &mut SipMsg) -> Result<()> {
    let status = reply.status();
    let creates_dialog = (101..300).contains(&status);
    let ids = DialogIds::from_headers(parts.reply_headers)?;
    let caller = plan::caller_side(parts.request_headers)?;
    let caller_call_id = caller.call_id;
    let id = st.dialog_id();
    let cfg = state::config()?;
    let knobs = shown_contact::with_reply_choices(st.knobs(), reply);
    let masked = shown_contact::in_reply(
        cfg,
        id.token(Side::Callee, &st.secrets()),
        &knobs.callee,
        || plan::contact_uri(parts.reply_headers).map(Cow::into_owned),
        request_line(parts.request.buf()).is_some_and(|l| is_sips(l.uri)),
        parts.request,
    )?;
    let callee_call_id = match st.callee_call_id() {
        Some(c) => Some(c.to_string()),
        None => super::sealed_dialog::masked_for(st, &caller_call_id)?,
    };
    let masking = callee_call_id.is_some();
    let callee = plan::callee_side(parts.reply_headers, &is_kamailio_uri);
    let edits = plan::reply_to_caller(
        parts.reply_headers,
        &caller.route,
        shown_contact::shown(&knobs.caller, &masked),
        masking.then_some(caller_call_id.as_str()),
        &is_kamailio_uri,
        creates_dialog,
        None,
    );
    reply.apply(edits)?;

    // Store the dialog once per callee tag, and again when a 2xx confirms it.
    let callee_contact = effective_contact(reply, parts.reply_headers, callee.contact);
    let (Some(callee_tag), Some(callee_contact), true) =
        (ids.to.tag.clone(), callee_contact, creates_dialog)
    else {
        return Ok(()); // no dialog (yet): nothing to route to
    };
    let h = tag_hash(&callee_tag);
    let confirmed = (200..300).contains(&status);
    // At most MAX_EARLY dialogs per INVITE: a callee side answering with
    // ever new To-tags cannot make more records.
    let must_write = match st.note_early(h) {
        None => {
            log::warn!(
                "a reply with yet another To-tag (more than {MAX_EARLY} dialogs for one INVITE); not stored"
            );
            false
        }
        Some((slot, new)) => (confirmed && st.confirm(slot)) || (new && !confirmed),
    };
    if !must_write {
        return Ok(());
    }
    let record = DialogRecord {
        callee_call_id: callee_call_id.unwrap_or_else(|| caller_call_id.clone()),
        call_id: caller_call_id,
        caller_tag: ids.from.tag.map(Cow::into_owned).unwrap_or_default(),
        callee_tag: callee_tag.into_owned(),
        caller_contact: effective_contact(
            parts.request,
            parts.request_headers,
            Some(caller.contact.clone()),
        )
        // A record-routed trusted callee was shown it with the token.
        .map(|c| shown_contact::as_the_party_sent_it(c, knobs.callee.sees_contacts))
        .unwrap_or(caller.contact),
        caller_route: caller.route,
        callee_contact,
        callee_route: callee.route,
        confirmed,
        secrets: st.secrets(),
        caller_source: parts.request.source_ip(),
        callee_source: reply.source_ip(),
        caller_hop: parts.request.source_uri(),
        callee_hop: reply.source_uri(),
        knobs,
    };
    let ttl = if confirmed {
        state::config()?.dialog_expire
    } else {
        EARLY_TTL
    };
    let state = if confirmed {
        store_state::ACTIVE
    } else {
        store_state::EARLY
    };
    let value = encode_stored(state, &record, state::config()?.bind_source);
    if value.len() > MAX_RECORD {
        log::error!(
            "dialog of Call-ID {} not stored: its record would take {} bytes (at most {MAX_RECORD}); \
             its in-dialog requests will be refused",
            printable(&record.call_id),
            value.len()
        );
        return Ok(());
    }
    // A 18x and the 2xx of one callee can be handled by two workers at
    // once: an early record is only created, never written over a record
    // that is there (the confirmed one), and not at all once a final reply
    // went out. One that a failure overtook while it was being written is
    // removed again (the cleanup of the failure may have missed it).
    let final_sent = || parts.transaction.uas_status();
    if !confirmed && final_sent() >= 200 {
        return Ok(());
    }
    let key = record_key(&id.hex(), h);
    let stored = if confirmed {
        with_store("topos_reply", |s| s.put(&key, &value, ttl)).is_some()
    } else {
        with_store("topos_reply", |s| s.put_new(&key, &value, ttl)) == Some(true)
    };
    if stored && !confirmed && final_sent() >= 300 {
        with_store("dialog cleanup", |s| s.delete(&key));
        return Ok(());
    }
    if stored && confirmed {
        stats::bump(|s| &s.dialogs_created);
        // With mask_callid, requests Kamailio sends itself into the dialog
        // (the dialog module's BYE) name it by the caller's Call-ID and
        // tags only: an index finds the dialog from those.
        if masking {
            let index = call_index_key(&record.call_id, &record.caller_tag);
            with_store("topos_reply", |s| s.put(&index, &id.0, ttl));
        }
    }
    Ok(())
}

/// Key of the index from a dialog's caller Call-ID and caller tag to its id.
fn call_index_key(call_id: &str, caller_tag: &str) -> Vec<u8> {
    let (call_id, tag) = (call_id.as_bytes(), caller_tag.as_bytes());
    crate::store::key::dialog_key("cid", call_id, &call_digest_hex(call_id, tag))
}

/// A request Kamailio sends itself into a hidden dialog (event_route
/// [tm:local-request]): with mask_callid, one to the callee side gets the
/// Call-ID that side knows; one to the caller side (its From-tag is the
/// callee's) and one of a dialog topos_rs does not know stay as they are.
/// Fails closed: when the dialog is known but its record cannot be read
/// (store down, record gone), the request is refused (false, or an error)
/// and the script drops it, rather than send the caller's Call-ID to the
/// callee side.
pub fn local_request(msg: &mut SipMsg) -> Result<bool> {
    if !state::config()?.mask_callid {
        return Ok(true);
    }
    let fields = crate::sip::headers::scan_headers(msg.buf())?;
    let h = Headers::new(msg.buf(), &fields);
    let ids = DialogIds::from_headers(h)?;
    let (Some(from_tag), Some(to_tag)) = (ids.from.tag.as_deref(), ids.to.tag.as_deref()) else {
        return Ok(true);
    };
    // To the callee side, the caller's tag is the From-tag.
    let index = call_index_key(&ids.call_id, from_tag);
    let Some(found) = with_store("topos_request", |s| s.get(&index)) else {
        return Err(Error::Storage("dialog storage unavailable"));
    };
    let Some(raw_id) = found else {
        return Ok(true);
    };
    let Ok(id) = <[u8; 16]>::try_from(raw_id.as_slice()) else {
        return Err(Error::Storage("unreadable Call-ID index record"));
    };
    let key = record_key(&DialogId(id).hex(), tag_hash(to_tag));
    let raw = match with_store("topos_request", |s| s.get(&key)) {
        None => return Err(Error::Storage("dialog storage unavailable")),
        Some(None) => {
            crate::state::log_refusal(&format!(
                "topos_request: refused: a request Kamailio sends to the callee side of \
                 dialog {} whose record is gone (Call-ID {}): not sent with the caller's Call-ID",
                DialogId(id).hex(),
                printable(&ids.call_id)
            ));
            return Ok(false);
        }
        Some(Some(raw)) => raw,
    };
    let (_, rec) = decode_stored(&raw).map_err(Error::UnreadableDialog)?;
    if rec.callee_call_id != rec.call_id && rec.callee_tag == to_tag {
        msg.apply(plan::replace_call_id(h, &rec.callee_call_id))?;
        msg.commit()?;
    }
    Ok(true)
}

/// A final reply to a dialog-creating request went to the caller: early
/// dialogs that no 2xx confirmed are over (a failed or cancelled call, or
/// the other branches of an answered one).
pub fn initial_reply_sent(st: &TxState, code: i32) {
    if code < 200 {
        return;
    }
    let hex = st.dialog_id().hex();
    for h in st.unconfirmed() {
        let key = record_key(&hex, h);
        with_store("dialog cleanup", |s| s.delete(&key));
    }
}

pub enum InDialog {
    /// Routed to the other side; the state goes on its transaction (None
    /// for an ACK, which has none); true: towards a trusted side, so the
    /// request leaves unhidden, Vias included.
    Routed(Option<NewTxState>, bool),
    /// Refused, with the reason for the log.
    Refused(String),
}

/// An in-dialog request: its token names the dialog and the side it goes
/// to; it is sent there through that side's route set.
pub fn route_in_dialog(
    msg: &mut SipMsg,
    headers: Headers<'_>,
    ids: &DialogIds,
) -> Result<InDialog> {
    // The Request-URI as the sender wrote it: loose_route() may have
    // replaced it already (a masked Contact points at this server, so rr
    // takes the previous hop for a strict router).
    let ruri = request_line(msg.buf())
        .map(|l| String::from_utf8_lossy(l.uri).into_owned())
        .ok_or(Error::Malformed("malformed request line"))?;
    let cfg = state::config()?;
    let Some((id, target, secret)) = token_in_uri(&ruri, &cfg.contact_param).and_then(parse_token)
    else {
        return Ok(InDialog::Refused(format!(
            "in-dialog request without a topos_rs token (Request-URI {})",
            printable(&ruri)
        )));
    };
    let (Some(from_tag), Some(to_tag)) = (ids.from.tag.as_deref(), ids.to.tag.as_deref()) else {
        return Ok(InDialog::Refused(
            "in-dialog request without the dialog's tags".into(),
        ));
    };
    // The record is the callee tag's: the To-tag of a request to the
    // callee side, the From-tag of a request to the caller side.
    let callee_tag = match target {
        Side::Callee => to_tag,
        Side::Caller => from_tag,
    };
    let h = tag_hash(callee_tag);
    let bye = method_is(msg, &["BYE"]);
    // A BYE ends the dialog (it stays BYE_GRACE for retransmissions and a
    // BYE re-sent with credentials); nothing renews an ended dialog, and
    // only a BYE is still routed during the grace time.
    let op = if bye {
        Lifecycle::End(BYE_GRACE)
    } else {
        Lifecycle::Refresh(cfg.dialog_expire)
    };
    // The request must prove, before anything changes, that it comes from
    // the other side of this very dialog: the target side's secret (from
    // the token), the Call-ID and the tags in that side's peer's order.
    let source = if cfg.bind_source {
        msg.source_ip()
    } else {
        String::new()
    };
    let proof = binding(
        &secret,
        ids.call_id.as_bytes(),
        from_tag.as_bytes(),
        to_tag.as_bytes(),
        source.as_bytes(),
    );
    let guard = Guard {
        offset: binding_offset(target),
        expect: &proof,
    };
    let key = record_key(&id.hex(), h);
    let lived = with_store("topos_request", |s| s.get_lifecycle(&key, op, Some(guard)));
    let (raw, ended_now) = match lived {
        None => return Err(Error::Storage("dialog storage unavailable")),
        Some(Lived::Missing) => {
            return Ok(InDialog::Refused(format!(
                "unknown or expired dialog {} (Call-ID {})",
                id.hex(),
                printable(&ids.call_id)
            )))
        }
        Some(Lived::Mismatch) => {
            return Ok(InDialog::Refused(format!(
                "token of dialog {} does not fit this request (forged, of the other side, \
                 or with another Call-ID or tags; Call-ID {})",
                id.hex(),
                printable(&ids.call_id)
            )))
        }
        Some(Lived::Live(raw)) => (raw, false),
        Some(Lived::EndedNow(raw)) => (raw, true),
        Some(Lived::Ended(raw)) if bye => (raw, false),
        Some(Lived::Ended(_)) => {
            return Ok(InDialog::Refused(format!(
                "dialog {} has ended (Call-ID {})",
                id.hex(),
                printable(&ids.call_id)
            )))
        }
    };
    let (record_state, rec) = decode_stored(&raw).map_err(Error::UnreadableDialog)?;
    // The Call-ID index (mask_callid) lives as long as the record it
    // leads to: a dialog kept up by in-dialog requests past dialog_expire
    // still gets the dialog module's BYE to its callee side mapped.
    if !bye && record_state == store_state::ACTIVE && rec.callee_call_id != rec.call_id {
        let index = call_index_key(&rec.call_id, &rec.caller_tag);
        with_store("topos_request", |s| s.touch(&index, cfg.dialog_expire));
    }
    // Counted once, by the request that ended a confirmed dialog.
    if ended_now && record_state == store_state::ACTIVE {
        stats::bump(|s| &s.dialogs_ended);
    }
    let (expected_call_id, other_call_id) = match target {
        Side::Callee => (&rec.call_id, &rec.callee_call_id),
        Side::Caller => (&rec.callee_call_id, &rec.call_id),
    };
    let (route, target_uri, sender_side) = match target {
        Side::Callee => (&rec.callee_route, &rec.callee_contact, Side::Caller),
        Side::Caller => (&rec.caller_route, &rec.caller_contact, Side::Callee),
    };
    let masked = shown_contact::in_request(
        cfg,
        id.token(sender_side, &rec.secrets),
        rec.knobs.of(sender_side),
        || plan::contact_uri(headers).map(Cow::into_owned),
        is_sips(target_uri.as_bytes()),
    );
    let to = rec.knobs.of(target);
    let new_call_id = (expected_call_id != other_call_id).then_some(other_call_id.as_str());
    let (edits, _) = plan::in_dialog_request(
        headers,
        route,
        shown_contact::shown(to, &masked),
        new_call_id,
    );
    msg.apply(edits)?;
    // A side with no route set of its own is reached directly: with
    // route_to_source, at the address its messages came from (a NATed
    // user agent's public address, as SBCs do), whatever its Contact says.
    let hop = match target {
        Side::Callee => &rec.callee_hop,
        Side::Caller => &rec.caller_hop,
    };
    let next_hop = route
        .first()
        .map(|r| entry_uri(r))
        .or_else(|| (cfg.route_to_source && !hop.is_empty()).then_some(hop.as_str()));
    msg.retarget(target_uri, next_hop)?;
    message_context::write(msg.identity(), |c| {
        c.caller_call_id = Some(rec.call_id.clone())
    });
    let to_trusted = to.trusted;
    if msg.is_ack() {
        return Ok(InDialog::Routed(None, to_trusted));
    }
    let mut st = new_state(Kind::InDialog, id, rec.secrets, &rec.knobs)?;
    set_in_dialog(&mut st, target, h, method_is(msg, &["INVITE", "UPDATE"]));
    if to_trusted {
        st.get_mut().set_vias_kept();
    }
    Ok(InDialog::Routed(Some(st), to_trusted))
}

/// A reply to an in-dialog request, on its way back to the request's
/// sender. A 2xx to a target refresh (re-INVITE, UPDATE) updates the remote
/// targets, as RFC 3261 12.2 says; other replies change nothing.
pub fn in_dialog_reply(st: &TxState, parts: &ReplyParts, reply: &mut SipMsg) -> Result<()> {
    let id = st.dialog_id();
    let target = st.target();
    let knobs = st.knobs();
    let reply_headers = parts.reply_headers;
    let masked = shown_contact::in_reply(
        state::config()?,
        id.token(target, &st.secrets()),
        knobs.of(target),
        || plan::contact_uri(reply_headers).map(Cow::into_owned),
        request_line(parts.request.buf()).is_some_and(|l| is_sips(l.uri)),
        parts.request,
    )?;
    let sender = match target {
        Side::Callee => Side::Caller,
        Side::Caller => Side::Callee,
    };
    let sender_call_id = plan::call_id(parts.request_headers)?;
    let restore = (plan::call_id(reply_headers)? != sender_call_id).then_some(&*sender_call_id);
    let (edits, replier_contact) = plan::in_dialog_reply(
        reply_headers,
        shown_contact::shown(knobs.of(sender), &masked),
        restore,
    );
    let replier_contact = effective_contact(
        reply,
        reply_headers,
        replier_contact.map(|c| c.into_owned()),
    );
    reply.apply(edits)?;

    if !st.is_target_refresh() || !(200..300).contains(&reply.status()) {
        return Ok(());
    }
    let sender_contact = plan::caller_side(parts.request_headers)
        .ok()
        .map(|c| c.contact)
        .filter(|c| !c.is_empty());
    let sender_contact = effective_contact(parts.request, parts.request_headers, sender_contact)
        .map(|c| shown_contact::as_the_party_sent_it(c, knobs.of(target).sees_contacts));
    if sender_contact.is_none() && replier_contact.is_none() {
        return Ok(());
    }
    let key = record_key(&id.hex(), st.callee_tag_hash());
    let Some(Some(raw)) = with_store("target refresh", |s| s.get(&key)) else {
        return Ok(());
    };
    let (record_state, mut rec) = decode_stored(&raw).map_err(Error::UnreadableDialog)?;
    let before = rec.clone();
    let (sender, replier) = match target {
        Side::Callee => (&mut rec.caller_contact, &mut rec.callee_contact),
        Side::Caller => (&mut rec.callee_contact, &mut rec.caller_contact),
    };
    if let Some(c) = sender_contact {
        *sender = c;
    }
    if let Some(c) = replier_contact {
        *replier = c;
    }
    if rec != before && record_state != store_state::ENDED {
        let ttl = state::config()?.dialog_expire;
        let value = encode_stored(record_state, &rec, state::config()?.bind_source);
        // Written only if the dialog has not ended meanwhile (a BYE
        // between the read above and this write), with the state the
        // record has then.
        with_store("target refresh", |s| {
            s.get_lifecycle(&key, Lifecycle::Replace(&value, ttl), None)
        });
    }
    Ok(())
}
