//! What `topos_request()` and `topos_reply()` do, written against the safe
//! `SipMsg` / `Transaction` wrappers and the pure `sip` and `dialog`
//! modules.
//!
//! Via hiding needs no storage (the stack stays in the transaction). Dialog
//! hiding keeps one record per dialog (per callee tag) in the store; the
//! transaction's `TxState` (shared memory) links its replies to the dialog.

mod dialog_hiding;
mod egress;
mod per_call;
mod reduce;
mod sealed_dialog;
mod shown_contact;
mod tm_hooks;
mod transfer;
mod tx_dialog;
mod via;

pub use egress::GATE as EGRESS_GATE;
pub use per_call::{topos_set_contact, topos_trust};
use reduce::reduce_reply;
pub use sealed_dialog::{
    caller_contact as sealed_caller_contact, in_dialog_reply_sent as sealed_in_dialog_reply_sent,
};
pub use tm_hooks::TM_HOOKS;

use crate::config::TokenMode;
use crate::dialog::knobs::DialogKnobs;
use crate::dialog::plan;
use crate::dialog::sealed::TokenText;
use crate::dialog::token::{DialogId, Secrets};
use crate::dialog::token_uri::token_in_uri;
use crate::error::{Error, Result};
use crate::ffi::msg::{is_kamailio_uri, SipMsg};
use crate::ffi::route::{current_route, Route};
use crate::ffi::tm::{self, Transaction};
use crate::ffi::tx_state::Kind;
use crate::ffi::via_swap;
use crate::message_context;
use crate::sip::dialog_ids::DialogIds;
use crate::sip::headers::{scan_headers, Headers};
use crate::sip::request_line::request_line;
use crate::sip::restore::check_restorable;
use crate::stats;
use std::sync::OnceLock;

/// Told when a reply to a dialog-creating request was hidden, with the
/// reply and its transaction (billing starts a `billing_start()` the core
/// onreply_route noted for it).
pub type InitialReplyHidden = fn(&mut SipMsg, &Transaction);

static ON_INITIAL_REPLY_HIDDEN: OnceLock<InitialReplyHidden> = OnceLock::new();

/// Registers the one `InitialReplyHidden` observer (mod_init, before the
/// fork; the first call wins).
pub fn on_initial_reply_hidden(f: InitialReplyHidden) {
    let _ = ON_INITIAL_REPLY_HIDDEN.set(f);
}

/// `topos_request()`: the request leaves with exactly one Via (Kamailio's),
/// no address of the sender's side, and, inside a dialog, goes to the real
/// target of the other side. False (with a log line) for an in-dialog
/// request whose token is unknown, expired, forged or of another call. A
/// request it refuses or cannot hide is noted for the egress gate: a
/// script that relays it anyway does not get it out.
pub fn topos_request(msg: &mut SipMsg) -> Result<bool> {
    let outcome = hide_request(msg);
    if !matches!(outcome, Ok(true)) {
        if let (Some(line), Ok((call_id, cseq))) = (request_line(msg.buf()), msg.callid_and_cseq())
        {
            egress::note_refused(line.method, call_id, cseq);
        }
    }
    outcome
}

fn hide_request(msg: &mut SipMsg) -> Result<bool> {
    if !msg.is_request() {
        return Err(Error::Misuse("topos_request() called for a reply"));
    }
    // A second call for the same message changes nothing.
    let id = msg.identity();
    if message_context::read(id, |c| c.hidden) {
        return Ok(true);
    }
    // Kamailio's parser takes `SIP/2.0` followed by anything for a version
    // and relays those bytes as they came (found 12-07: `SIP/2.0127.0.0.1:...`).
    if !request_line(msg.buf()).is_some_and(|l| l.is_sip_2_0()) {
        return Err(Error::Malformed(
            "request line: the SIP-Version is not SIP/2.0",
        ));
    }
    // A request Kamailio sends itself (event_route[tm:local-request]): the
    // dialog module's BYE to the callee side carries the caller's Call-ID,
    // which that side has never seen with mask_callid.
    if current_route() == Route::Local {
        return match crate::state::config()?.token_mode {
            TokenMode::Sealed => sealed_dialog::local_request(msg),
            TokenMode::Stored => dialog_hiding::local_request(msg),
        };
    }
    // In failure_route the request is tm's copy of the transaction's
    // request, which carries the hiding done in request_route already (its
    // lumps): hiding it again would add a second Contact. Serial forking,
    // uac_auth() re-sends: the new branch is hidden as the first was.
    if current_route() == Route::Failure && Transaction::current().is_some_and(|t| t.is_hidden()) {
        return Ok(true);
    }
    // An ACK for a negative reply belongs to tm (it absorbs it; matching
    // needs its Via): leave it alone. Only one that names the INVITE's own
    // transaction is absorbed; any other ACK is routed by its token below,
    // or refused.
    if msg.is_ack() && tm::ack_is_absorbed(msg)? {
        return Ok(true);
    }
    // One scan of the header section serves every step below.
    let fields = scan_headers(msg.buf())?;
    let h = Headers::new(msg.buf(), &fields);
    // Fail closed, before anything changes: a request whose Via stack its
    // replies could not get back is refused, never relayed unhidden.
    check_restorable(h)?;
    let ids = DialogIds::from_headers(h)?;
    let method = request_line(msg.buf()).map_or(&b""[..], |l| l.method);
    // A transfer's REFER (its Refer-To) and NOTIFY (its sipfrag body) are
    // checked before anything changes: one refused changes nothing.
    let transfer_edits = match transfer_edits(msg, h, method)? {
        Ok(e) => e,
        Err(why) => {
            // A Refer-To's token that does not fit is a misused token.
            if method.eq_ignore_ascii_case(b"REFER") {
                stats::bump(|s| &s.token_misses);
            }
            crate::state::log_refusal(&format!("topos_request: refused: {why}"));
            return Ok(false);
        }
    };
    // An ACK without a To-tag acknowledges a failure hop by hop; one tm
    // does not absorb (another branch, or no transaction) goes nowhere: it
    // would be relayed statelessly to whatever its Request-URI names.
    if msg.is_ack() && ids.to.tag.is_none() {
        stats::bump(|s| &s.token_misses);
        crate::state::log_refusal(
            "topos_request: refused: an ACK without a To-tag that no transaction here \
             absorbs (another branch than its INVITE's)",
        );
        return Ok(false);
    }
    // `to_trusted`: the request goes to a trusted side (one-way hiding)
    // and leaves with its Vias, as without topos_rs.
    let (state, to_trusted) = if ids.to.tag.is_some() {
        match route_by_token(msg, h, &ids)? {
            dialog_hiding::InDialog::Routed(state, to_trusted) => {
                transfer_edits.apply(msg)?;
                (state, to_trusted)
            }
            dialog_hiding::InDialog::Refused(why) => {
                stats::bump(|s| &s.token_misses);
                crate::state::log_refusal(&format!("topos_request: refused: {why}"));
                return Ok(false);
            }
        }
    } else if dialog_hiding::creates_dialog(msg) {
        let invite = method.eq_ignore_ascii_case(b"INVITE");
        // An INVITE to a token of this Kamailio is a transfer's, or
        // nothing: it never goes to the token's URI (this server).
        let transfer = match invite.then(|| transfer::invite(msg, h)).transpose()? {
            Some(Some(Err(why))) => {
                stats::bump(|s| &s.token_misses);
                crate::state::log_refusal(&format!("topos_request: refused: {why}"));
                return Ok(false);
            }
            Some(Some(Ok(t))) => Some(t),
            _ => None,
        };
        match &transfer {
            Some(t) => msg.apply(t.edits.clone())?,
            None => {
                msg.apply(plan::unrouted_routes(h, msg.next_hop(), &is_kamailio_uri))?;
                if invite {
                    msg.apply(transfer::replaces_from_outside(msg, h)?)?;
                }
            }
        }
        let Some(initial) = hide_new_dialog(msg, h, &ids)? else {
            return Ok(false);
        };
        if let Some(t) = transfer {
            msg.retarget(&t.target, t.next_hop.as_deref())?;
        }
        if initial.record_routes_kept {
            // A trusted callee sees the caller side's Record-Routes: the
            // dialog module must count them.
            message_context::write(id, |c| c.record_routes_kept = true);
        } else {
            crate::ffi::dialog_module::hidden_invite(msg);
        }
        (Some(initial.state), initial.to_trusted)
    } else {
        let register = request_method_is(h, "REGISTER");
        msg.apply(plan::outside_dialog(h, register))?;
        msg.apply(plan::unrouted_routes(h, msg.next_hop(), &is_kamailio_uri))?;
        transfer_edits.apply(msg)?;
        let state = tx_dialog::new_state(
            Kind::ViaOnly,
            DialogId([0; 16]),
            Secrets::default(),
            &DialogKnobs::default(),
        )?;
        (Some(state), false)
    };
    if !to_trusted {
        via::hide_request_vias(msg, h)?;
    }
    msg.commit()?;
    if to_trusted {
        // Deliberately with its Vias: the egress gate lets it go.
        if let (Some(line), Ok((call_id, cseq))) = (request_line(msg.buf()), msg.callid_and_cseq())
        {
            egress::note_unhidden(line.method, call_id, cseq);
        }
    }
    if msg.is_ack() {
        // An ACK for a 2xx is relayed statelessly, without tm (no callback
        // before it is built).
        msg.drop_edits_inside_deletions();
        if !to_trusted {
            via_swap::suppress_top_via_update(msg)?;
        }
    } else if let Some(state) = state {
        tm::hide_transaction_of(msg, state)?;
    }
    message_context::write(id, |c| c.hidden = true);
    if !to_trusted {
        stats::bump(|s| &s.requests_hidden);
    }
    Ok(true)
}

/// What a transfer's REFER or NOTIFY needs changed, once it is routed.
#[derive(Default)]
struct TransferEdits {
    /// A Refer-To's token made a transfer token.
    headers: Vec<crate::sip::edit::Edit>,
    /// A sipfrag body's bytes after its status line.
    body_cut: Option<std::ops::Range<usize>>,
}

impl TransferEdits {
    fn apply(self, msg: &mut SipMsg) -> Result<()> {
        msg.apply(self.headers)?;
        if let Some(cut) = self.body_cut {
            msg.delete_from_body(cut)?;
        }
        Ok(())
    }
}

/// The transfer edits of a REFER or a NOTIFY (none for anything else), or
/// why the request is refused.
fn transfer_edits(
    msg: &SipMsg,
    h: Headers<'_>,
    method: &[u8],
) -> Result<std::result::Result<TransferEdits, String>> {
    if method.eq_ignore_ascii_case(b"REFER") {
        return Ok(transfer::refer(msg, h)?.map(|headers| TransferEdits {
            headers,
            body_cut: None,
        }));
    }
    if method.eq_ignore_ascii_case(b"NOTIFY") {
        return Ok(transfer::sipfrag(msg, h).map(|body_cut| TransferEdits {
            headers: Vec::new(),
            body_cut,
        }));
    }
    Ok(Ok(TransferEdits::default()))
}

/// Routes an in-dialog request by the token in its Request-URI: a sealed
/// token (token_mode sealed) opens with the key file, any other is looked
/// up in the store (or refused).
fn route_by_token(
    msg: &mut SipMsg,
    h: Headers<'_>,
    ids: &DialogIds,
) -> Result<dialog_hiding::InDialog> {
    let cfg = crate::state::config()?;
    if cfg.token_mode == TokenMode::Sealed {
        let sealed = request_line(msg.buf())
            .and_then(|l| std::str::from_utf8(l.uri).ok())
            .and_then(|uri| token_in_uri(uri, &cfg.contact_param))
            .and_then(TokenText::parse);
        if let Some(token) = sealed {
            return sealed_dialog::route_in_dialog(msg, h, ids, &token);
        }
    }
    dialog_hiding::route_in_dialog(msg, h, ids)
}

/// Hides a dialog-creating request: with sealed tokens unless its caller
/// side would not fit one, or the script chose what a side is shown or
/// trusted a side (`topos_set_contact()`, `topos_trust()`, a
/// `trusted_socket`: sealed tokens do not carry those yet), else (and in
/// stored mode) with a record in the store. None (refused, logged) while
/// the store cannot take one.
fn hide_new_dialog(
    msg: &mut SipMsg,
    h: Headers<'_>,
    ids: &DialogIds,
) -> Result<Option<dialog_hiding::Initial>> {
    let sealed_mode = crate::state::config()?.token_mode == TokenMode::Sealed;
    if sealed_mode && shown_contact::for_new_dialog(msg) != DialogKnobs::default() {
        log::debug!(
            "the dialog of Call-ID {} has per-call choices for its sides: kept in the store",
            crate::log_text::printable(&ids.call_id)
        );
    } else if sealed_mode {
        if let Some(state) = sealed_dialog::hide_initial(msg, h)? {
            return Ok(Some(dialog_hiding::Initial {
                state,
                to_trusted: false,
                record_routes_kept: false,
            }));
        }
        stats::bump(|s| &s.dialogs_stored_too_large);
        log::info!(
            "the dialog of Call-ID {} would not fit a sealed token: kept in the store",
            crate::log_text::printable(&ids.call_id)
        );
    }
    // A dialog whose record cannot be stored could be neither routed nor
    // billed later: while the store is known down, new dialogs are refused
    // at once (the script answers) instead of failing mid-call.
    if crate::state::with_store("topos_request", |s| s.ensure_available()).is_none() {
        crate::state::log_refusal(
            "topos_request: refused a new dialog: dialog storage unavailable or full",
        );
        return Ok(None);
    }
    dialog_hiding::hide_initial(msg, h, sealed_mode).map(Some)
}

/// `topos_reply()`: the reply goes upstream with the sender's own Via stack
/// and nothing of the far side.
///
/// tm hides every reply of a hidden transaction when it matches the reply
/// (tm callback), so a reply can never leave unhidden. In a named reply
/// route this call finds the transaction and makes sure; in the core
/// `onreply_route`, which runs before tm has matched the reply, there is
/// nothing to do yet and it returns true.
pub fn topos_reply(msg: &mut SipMsg) -> Result<bool> {
    if !msg.is_reply() {
        return Err(Error::Misuse("topos_reply() called for a request"));
    }
    if current_route() == Route::TmOnReply {
        if let Some(t) = Transaction::current() {
            if t.is_hidden() {
                hide_reply(&t, msg)?;
            }
        }
    }
    Ok(true)
}

/// What the reply steps (Via restoration, dialog hiding) read: the
/// transaction's request, and both messages' header sections, each scanned
/// once by `hide_reply`.
pub struct ReplyParts<'a> {
    pub transaction: &'a Transaction,
    pub request: &'a SipMsg<'a>,
    pub request_headers: Headers<'a>,
    pub reply_headers: Headers<'a>,
}

/// Hides a reply of a hidden transaction (once per reply). On error nothing
/// is applied: the caller reduces the reply (`reduce_reply`), it never goes
/// out as it came.
pub fn hide_reply(t: &Transaction, reply: &mut SipMsg) -> Result<()> {
    // tm never relays a 100 Trying.
    if reply.status() == 100 {
        return Ok(());
    }
    // Once per reply: the tm callback or the named reply route, whichever
    // runs first.
    let id = reply.identity();
    if message_context::read(id, |c| c.restored) {
        return Ok(());
    }
    let Some(state) = t.hiding_state() else {
        return Ok(());
    };
    let request = t
        .request()
        .ok_or(Error::Kamailio("transaction has no request"))?;
    // Each message's header section is scanned once for the Via and the
    // dialog steps.
    let request_fields = scan_headers(request.buf())?;
    let reply_fields = scan_headers(reply.buf())?;
    let parts = ReplyParts {
        transaction: t,
        request: &request,
        request_headers: Headers::new(request.buf(), &request_fields),
        reply_headers: Headers::new(reply.buf(), &reply_fields),
    };
    // A request that left with its Vias (to a trusted side) gets its
    // replies with its stack as they are.
    if !state.vias_kept() {
        via::restore_reply_vias(&parts, reply)?;
    }
    match (state.kind(), state.is_sealed()) {
        (Kind::Initial, true) => sealed_dialog::initial_reply(state, &parts, reply)?,
        (Kind::Initial, false) => dialog_hiding::initial_reply(state, &parts, reply)?,
        (Kind::InDialog, true) => sealed_dialog::in_dialog_reply(state, &parts, reply)?,
        (Kind::InDialog, false) => dialog_hiding::in_dialog_reply(state, &parts, reply)?,
        (Kind::ViaOnly, _) => {
            let register = request_method_is(parts.request_headers, "REGISTER");
            reply.apply(plan::outside_dialog(parts.reply_headers, register))?
        }
    }
    reply.apply(plan::reply_without_route(parts.reply_headers))?;
    reply.commit()?;
    // Edits queued before tm matched the reply (the core onreply_route)
    // inside headers just removed; later ones go when tm relays it.
    reply.drop_edits_inside_deletions();
    // The core adds a Content-Length to a reply for a stream transport only
    // when its second Via is one; with the stack hidden the callee side's
    // reply has no second Via: the caller's top Via stands in, so a UDP
    // callee's reply without Content-Length gets one on the way to a TCP,
    // TLS or WebSocket caller, as without topos_rs.
    if !state.vias_kept() {
        reply.take_via2_from(&request);
    }
    message_context::write(id, |c| c.restored = true);
    stats::bump(|s| &s.replies_restored);
    if state.kind() == Kind::Initial {
        if let Some(observer) = ON_INITIAL_REPLY_HIDDEN.get() {
            observer(reply, t);
        }
    }
    Ok(())
}

/// True if the request's CSeq method is `method`.
fn request_method_is(h: Headers<'_>, method: &str) -> bool {
    h.named("cseq", None).next().is_some_and(|f| {
        h.value(f)
            .split_whitespace()
            .nth(1)
            .is_some_and(|m| m.eq_ignore_ascii_case(method))
    })
}
