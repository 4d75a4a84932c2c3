//! The tm module: its API (bound through `find_export("load_tm")`), the
//! `Transaction` wrapper, and the transaction callbacks that carry Via hiding
//! through every branch and every reply. What happens to the replies of a
//! hidden transaction is the module's behaviour, not this wrapper's: it
//! registers `TransactionHooks` at mod_init.

use super::bindings::{
    cell, sip_msg, str_, tm_binds, tmcb_params, topos_shim_find_invite, topos_shim_load_tm,
    topos_shim_t_undefined,
    TMCB_REQUEST_FWDED, TMCB_REQUEST_SENT, TMCB_RESPONSE_FWDED, TMCB_RESPONSE_IN,
    TMCB_RESPONSE_OUT,
};
use super::guard::guard_void;
use super::msg::SipMsg;
use super::tx_state::{self, NewTxState, TxState};
use super::via_swap;
use crate::error::{Error, Result};
use std::os::raw::c_int;
use std::ptr::NonNull;
use std::sync::OnceLock;

struct TmApi(tm_binds);
// SAFETY: tm_binds is a table of function pointers filled once in mod_init
// (before Kamailio forks) and only read afterwards.
unsafe impl Sync for TmApi {}
// SAFETY: as above: the table is never written after mod_init.
unsafe impl Send for TmApi {}

static TM: OnceLock<TmApi> = OnceLock::new();

/// The events of a hidden transaction that the module's behaviour handles.
pub trait TransactionHooks: Sync {
    /// tm matched `reply` to hidden transaction `t` (before any reply
    /// route): the reply must not go out as it came.
    fn reply_received(&self, t: &Transaction, reply: &mut SipMsg);
    /// A reply of a hidden transaction went out with status `code`.
    fn reply_sent(&self, state: &TxState, code: i32);
    /// tm is about to build `req` for one branch of hidden transaction
    /// `state`: everything the script queued on it is there now. What is
    /// added here is for this branch only.
    fn request_forwarded(&self, state: &TxState, req: &mut SipMsg);
}

static HOOKS: OnceLock<&'static dyn TransactionHooks> = OnceLock::new();

/// Installs the hooks of hidden transactions (mod_init, before the fork;
/// the first call wins). Until then no transaction is hidden.
pub fn register_hooks(hooks: &'static dyn TransactionHooks) {
    let _ = HOOKS.set(hooks);
}

fn hooks() -> Option<&'static dyn TransactionHooks> {
    HOOKS.get().copied()
}

/// Binds tm's API; mod_init calls this so a missing tm stops start-up.
pub fn load() -> Result<()> {
    if TM.get().is_some() {
        return Ok(());
    }
    let mut binds = tm_binds::default();
    // SAFETY: load_tm fills the table; tm must be loaded before us.
    if unsafe { topos_shim_load_tm(&mut binds) } < 0 {
        return Err(Error::Kamailio(
            "cannot bind the tm module API: loadmodule \"tm.so\" before \"topos_rs.so\"",
        ));
    }
    let _ = TM.set(TmApi(binds));
    Ok(())
}

fn api() -> Result<&'static tm_binds> {
    TM.get()
        .map(|t| &t.0)
        .ok_or(Error::Kamailio("tm API not bound"))
}

/// A tm transaction (`struct cell`, in shared memory).
pub struct Transaction {
    raw: NonNull<cell>,
}

/// The callback every hidden transaction carries; its presence on a
/// transaction is what "hidden" means. Its parameter is the transaction's
/// `TxState` (shared memory, freed by tm with the transaction).
const HIDING_EVENTS: u32 = TMCB_REQUEST_FWDED
    | TMCB_REQUEST_SENT
    | TMCB_RESPONSE_IN
    | TMCB_RESPONSE_FWDED
    | TMCB_RESPONSE_OUT;

fn real_transaction(p: *mut cell) -> Option<NonNull<cell>> {
    // SAFETY: returns tm's T_UNDEFINED sentinel, a constant.
    let undefined = unsafe { topos_shim_t_undefined() } as *mut cell;
    if p == undefined {
        None
    } else {
        NonNull::new(p)
    }
}

impl Transaction {
    /// The transaction tm has bound to the message being processed, if any.
    pub fn current() -> Option<Transaction> {
        let gett = api().ok()?.t_gett?;
        // SAFETY: t_gett only reads tm's per-process current transaction.
        real_transaction(unsafe { gett() }).map(|raw| Transaction { raw })
    }

    fn get(&self) -> &cell {
        // SAFETY: tm keeps the cell alive while it is the current
        // transaction or while one of its callbacks runs.
        unsafe { self.raw.as_ref() }
    }

    /// The request as it arrived (shm copy tm keeps for the transaction).
    pub fn request(&self) -> Option<SipMsg<'_>> {
        // SAFETY: uas.request lives as long as the transaction.
        unsafe { SipMsg::from_raw(self.get().uas.request) }
    }

    /// The state topos_request() attached, if it hid this transaction.
    pub fn hiding_state(&self) -> Option<&TxState> {
        let mut cb = self.get().tmcb_hl.first;
        while !cb.is_null() {
            // SAFETY: tm's callback list is a null-terminated shm list that
            // is only appended to.
            let c = unsafe { &*cb };
            let ours = c
                .callback
                .is_some_and(|f| std::ptr::fn_addr_eq(f, on_transaction_event as TransactionCb));
            if ours {
                // SAFETY: our callback's parameter is always a TxState.
                return unsafe { TxState::from_param(c.param) };
            }
            cb = c.next;
        }
        None
    }

    /// The final status tm sent upstream so far (0: none yet).
    pub fn uas_status(&self) -> u32 {
        self.get().uas.status
    }

    /// True if topos_request() hid this transaction's requests.
    pub fn is_hidden(&self) -> bool {
        self.hiding_state().is_some()
    }
}

type TransactionCb = unsafe extern "C" fn(*mut cell, c_int, *mut tmcb_params);

unsafe extern "C" fn release_state(p: *mut std::os::raw::c_void) {
    super::guard::guard_void("transaction state release", || {
        // SAFETY: tm calls this once, with the parameter we registered.
        unsafe { tx_state::release(p) };
    });
}

/// Registers the hiding callbacks for the request being processed, with
/// `state` as their parameter: on its transaction if tm already has one
/// (failure_route, branch_route), else as "early" callbacks that tm moves
/// onto the transaction it creates.
pub fn hide_transaction_of(msg: &SipMsg, state: NewTxState) -> Result<()> {
    let current = Transaction::current();
    if current.as_ref().is_some_and(Transaction::is_hidden) {
        return Ok(());
    }
    // A hidden transaction's replies need the hooks.
    if hooks().is_none() {
        return Err(Error::Kamailio("no transaction hooks registered"));
    }
    let register = api()?
        .register_tmcb
        .ok_or(Error::Kamailio("tm has no register_tmcb"))?;
    let t = current.map_or(std::ptr::null_mut(), |t| t.raw.as_ptr());
    let param = state.into_raw();
    // SAFETY: registers a 'static callback; tm owns `param` from now on
    // and frees it with release_state.
    let rc = unsafe {
        register(
            msg.as_ptr(),
            t,
            HIDING_EVENTS as c_int,
            Some(on_transaction_event),
            param,
            Some(release_state),
        )
    };
    if rc <= 0 {
        // SAFETY: tm did not adopt the parameter; it is still ours.
        unsafe { tx_state::release(param) };
        return Err(Error::TmRefusedCallbacks(rc));
    }
    Ok(())
}


/// What the module needs to know of the INVITE transaction tm keeps for a
/// Call-ID and CSeq number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteTransaction {
    /// A final reply of 300 or more went upstream.
    pub negative: bool,
    /// topos_request() hid it.
    pub hidden: bool,
    /// Its request's top Via names the same transaction as the top Via of
    /// the message it was looked up for (the same branch and sent-by: tm's
    /// hop-by-hop match of an ACK).
    pub same_top_via: bool,
}

/// tm's INVITE transaction with this Call-ID and CSeq number, if there is
/// one (the newest); `via_of` is the message whose top Via is compared
/// with its request's. The shim walks tm's table itself:
/// `t_lookup_callid()` would take a CANCEL's transaction for the INVITE's.
pub fn find_invite(
    call_id: &[u8],
    cseq_number: &[u8],
    via_of: Option<&SipMsg>,
) -> Result<Option<InviteTransaction>> {
    let tm = api()?;
    if call_id.is_empty() || cseq_number.is_empty() {
        return Ok(None);
    }
    let text = |b: &[u8]| str_ {
        s: b.as_ptr() as *mut std::os::raw::c_char,
        len: b.len().min(c_int::MAX as usize) as c_int,
    };
    let (mut callid, mut cseq) = (text(call_id), text(cseq_number));
    let (mut status, mut ours, mut same_via) = (0u32, 0, 0);
    let msg = via_of.map_or(std::ptr::null_mut(), |m| m.as_ptr());
    // SAFETY: the shim reads tm's table under the bucket's lock (the same
    // recursive lock tm takes) and only copies three facts out; the texts
    // are read during the call only (no fixed-size buffer is involved).
    let rc = unsafe {
        topos_shim_find_invite(
            tm as *const tm_binds as *mut tm_binds,
            &mut callid,
            &mut cseq,
            Some(on_transaction_event),
            msg,
            &mut status,
            &mut ours,
            &mut same_via,
        )
    };
    match rc {
        1 => Ok(Some(InviteTransaction {
            negative: status >= 300,
            hidden: ours == 1,
            same_top_via: same_via == 1,
        })),
        0 => Ok(None),
        _ => Err(Error::Kamailio("tm has no transaction table")),
    }
}

/// True if tm will absorb this ACK: it acknowledges a negative final reply
/// of an INVITE transaction that is still there and names that very
/// transaction in its top Via (hop-by-hop ACK, RFC 3261 17.2.1); such an
/// ACK must keep its real Via for tm's matching. An ACK with the Call-ID
/// and CSeq of a refused call but another branch is not: tm would relay it
/// statelessly to its Request-URI (found 12-07: with the caller's whole Via
/// stack, to any address).
pub fn ack_is_absorbed(msg: &mut SipMsg) -> Result<bool> {
    let (callid, cseq) = msg.callid_and_cseq()?;
    Ok(find_invite(callid, cseq, Some(msg))?.is_some_and(|t| t.negative && t.same_top_via))
}

/// The one tm callback of hidden transactions.
unsafe extern "C" fn on_transaction_event(t: *mut cell, kind: c_int, params: *mut tmcb_params) {
    guard_void("topos_rs tm callback", || {
        if params.is_null() {
            return;
        }
        // SAFETY: tm passes valid parameters for the duration of the call.
        let p = unsafe { &*params };
        match kind as u32 {
            TMCB_REQUEST_FWDED => {
                let state = if p.param.is_null() {
                    None
                } else {
                    // SAFETY: tm passes the address of our registered
                    // parameter.
                    unsafe { TxState::from_param(*p.param) }
                };
                on_request_forwarded(p.req, state)
            }
            TMCB_REQUEST_SENT => {
                // SAFETY: the request tm just sent, valid for this call.
                if let Some(mut req) = unsafe { SipMsg::from_raw(p.req) } {
                    via_swap::restore(&mut req);
                }
            }
            TMCB_RESPONSE_IN => {
                let (Some(raw), Some(hooks)) = (real_transaction(t), hooks()) else {
                    return;
                };
                // SAFETY: the reply tm is processing, valid for this call.
                if let Some(mut reply) = unsafe { SipMsg::from_raw(p.rpl) } {
                    hooks.reply_received(&Transaction { raw }, &mut reply);
                }
            }
            TMCB_RESPONSE_FWDED => {
                // The reply is about to be built: what the reply routes
                // queued inside headers topos_rs removed goes too.
                // SAFETY: the reply tm is relaying, valid for this call.
                if let Some(mut reply) = unsafe { SipMsg::from_raw(p.rpl) } {
                    reply.drop_edits_inside_deletions();
                }
            }
            TMCB_RESPONSE_OUT => {
                if p.param.is_null() {
                    return;
                }
                // SAFETY: tm passes the address of our registered parameter.
                let state = unsafe { TxState::from_param(*p.param) };
                if let (Some(state), Some(hooks)) = (state, hooks()) {
                    hooks.reply_sent(state, p.code);
                }
            }
            _ => {}
        }
    });
}

fn on_request_forwarded(req: *mut sip_msg, state: Option<&TxState>) {
    // SAFETY: tm is about to build this request for a branch.
    if let Some(mut msg) = unsafe { SipMsg::from_raw(req) } {
        if let (Some(state), Some(hooks)) = (state, hooks()) {
            hooks.request_forwarded(state, &mut msg);
        }
        // What the script queued inside headers topos_rs removed (before
        // or after topos_request()) must not land on the next header.
        msg.drop_edits_inside_deletions();
        // A request that goes to a trusted side leaves with its Vias: the
        // core writes received= / rport= as it always does.
        if state.is_some_and(TxState::vias_kept) {
            return;
        }
        if let Err(e) = via_swap::suppress_top_via_update(&mut msg) {
            log::error!("preparing a hidden request for relay: {e}");
        }
    }
}
