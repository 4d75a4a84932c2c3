//! The egress gate: the last check of every request before it leaves
//! (ffi::egress calls it from the core's network-out event), whatever path
//! built it. A request hidden by `topos_request()` leaves with exactly one
//! Via, Kamailio's own; Kamailio's own requests (tm's ACK and CANCEL, local
//! requests) carry one too. A request that leaves with more carries its
//! sender's Via stack, which is the operator's choice for traffic the
//! module was never asked to hide, but a leak when the request belongs to
//! a hidden transaction or dialog. Those are dropped, counted per cause,
//! and logged once per cause in each process:
//!
//! - it carries a topos_rs token in its Request-URI: an in-dialog request
//!   of a hidden dialog relayed without `topos_request()`;
//! - it is an ACK or CANCEL of a hidden INVITE transaction (found 12-07: an
//!   ACK with another branch, matched end to end by `t_check_trans()` and
//!   `t_relay()`ed to any address with the caller's Vias);
//! - `topos_request()` refused it, and the script relayed it anyway.
//!
//! One-way hiding sends some requests with their Vias on purpose: those
//! `topos_request()` routed to a trusted side. Each is noted when routed
//! (an ACK for a 2xx to a trusted side would match the second cause, a
//! trusted party's real Contact may carry a parameter that reads as a
//! token) and let go when it leaves right after; nothing else is noted,
//! so a request bound for an untrusted side is checked as before.
//!
//! Replies need no check here: tm hands every reply of a hidden transaction
//! to topos_rs before any route runs (`tm_hooks`), which hides or reduces
//! it.

use crate::dialog::sealed::TokenText;
use crate::dialog::token::{parse_token, parse_transfer_token};
use crate::dialog::token_uri::{find_token, TokenPlace};
use crate::ffi::egress::EgressGate;
use crate::ffi::msg::is_kamailio_uri;
use crate::ffi::tm;
use crate::sip::outgoing::{read_request, OutgoingRequest};
use crate::stats::{self, Stats};
use std::cell::{Cell, RefCell};
use std::sync::atomic::AtomicU64;

/// Why a request was not let out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    TokenRequest,
    TransactionAckCancel,
    RefusedRequest,
}

impl Cause {
    fn counter(self) -> fn(&Stats) -> &AtomicU64 {
        match self {
            Cause::TokenRequest => |s| &s.dropped_token_requests,
            Cause::TransactionAckCancel => |s| &s.dropped_ack_cancel,
            Cause::RefusedRequest => |s| &s.dropped_refused_requests,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Cause::TokenRequest => {
                "a request with a topos_rs token in its Request-URI was about to leave with \
                 its sender's Vias (relayed without topos_request())"
            }
            Cause::TransactionAckCancel => {
                "an ACK or CANCEL of a hidden INVITE transaction was about to leave with its \
                 sender's Vias (another branch than the INVITE's, relayed without \
                 topos_request())"
            }
            Cause::RefusedRequest => {
                "a request topos_request() refused was about to be relayed anyway, with its \
                 sender's Vias"
            }
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The request `topos_request()` refused last in this process (method,
/// Call-ID, CSeq number): a script that relays it anyway is caught here.
#[derive(Default)]
struct RefusedMark {
    method: Vec<u8>,
    call_id: Vec<u8>,
    cseq_number: Vec<u8>,
}

thread_local! {
    static REFUSED: RefCell<Option<RefusedMark>> = const { RefCell::new(None) };
    /// The request `topos_request()` last routed to a trusted side with
    /// its Vias, on purpose.
    static UNHIDDEN: RefCell<Option<RefusedMark>> = const { RefCell::new(None) };
    /// Causes this process has logged already (one bit each).
    static LOGGED: Cell<u8> = const { Cell::new(0) };
}

fn note(
    mark: &'static std::thread::LocalKey<RefCell<Option<RefusedMark>>>,
    method: &[u8],
    call_id: &[u8],
    cseq_number: &[u8],
) {
    mark.with_borrow_mut(|m| {
        let m = m.get_or_insert_with(RefusedMark::default);
        for (to, from) in [
            (&mut m.method, method),
            (&mut m.call_id, call_id),
            (&mut m.cseq_number, cseq_number),
        ] {
            to.clear();
            to.extend_from_slice(from);
        }
    });
}

fn noted(
    mark: &'static std::thread::LocalKey<RefCell<Option<RefusedMark>>>,
    r: &OutgoingRequest,
) -> bool {
    mark.with_borrow(|m| {
        m.as_ref().is_some_and(|m| {
            r.method.eq_ignore_ascii_case(&m.method)
                && r.call_id == Some(&m.call_id[..])
                && r.cseq_number == Some(&m.cseq_number[..])
        })
    })
}

/// Notes a request `topos_request()` refused (or could not hide).
pub fn note_refused(method: &[u8], call_id: &[u8], cseq_number: &[u8]) {
    note(&REFUSED, method, call_id, cseq_number);
}

/// Notes a request `topos_request()` routed to a trusted side with its
/// Vias (one-way hiding): it leaves as it is.
pub fn note_unhidden(method: &[u8], call_id: &[u8], cseq_number: &[u8]) {
    note(&UNHIDDEN, method, call_id, cseq_number);
}

fn was_refused(r: &OutgoingRequest) -> bool {
    noted(&REFUSED, r)
}

/// True if the Request-URI carries a topos_rs token: as the user part of
/// a URI at this Kamailio, or in the token parameter (`contact_param`) of
/// any URI (the real Contact a trusted side is shown carries it there).
fn names_a_token(r: &OutgoingRequest) -> bool {
    let Ok(uri) = std::str::from_utf8(r.request_uri) else {
        return false;
    };
    let param = crate::state::config().map_or("tps", |c| c.contact_param.as_str());
    let token = |t: &str| {
        parse_token(t).is_some()
            || parse_transfer_token(t).is_some()
            || TokenText::parse(t).is_some()
    };
    match find_token(uri, param) {
        Some((t, TokenPlace::Param)) => token(t),
        Some((t, TokenPlace::User)) => token(t) && is_kamailio_uri(uri),
        None => false,
    }
}

/// True if tm has a hidden INVITE transaction this ACK or CANCEL belongs to.
fn of_hidden_transaction(r: &OutgoingRequest) -> bool {
    if !(r.is_method("ACK") || r.is_method("CANCEL")) {
        return false;
    }
    let (Some(call_id), Some(cseq)) = (r.call_id, r.cseq_number) else {
        return false;
    };
    match tm::find_invite(call_id, cseq, None) {
        Ok(found) => found.is_some_and(|t| t.hidden),
        // Without tm's answer it cannot be told apart: fail closed.
        Err(_) => true,
    }
}

fn cause_of(r: &OutgoingRequest) -> Option<Cause> {
    if !r.carries_sender_vias() || noted(&UNHIDDEN, r) {
        return None;
    }
    if names_a_token(r) {
        Some(Cause::TokenRequest)
    } else if was_refused(r) {
        Some(Cause::RefusedRequest)
    } else if of_hidden_transaction(r) {
        Some(Cause::TransactionAckCancel)
    } else {
        None
    }
}

fn report(cause: Cause, r: &OutgoingRequest) {
    stats::bump(cause.counter());
    let logged = LOGGED.get();
    if logged & cause.bit() != 0 {
        return;
    }
    LOGGED.set(logged | cause.bit());
    log::warn!(
        "dropped: {} ({} {}, Call-ID {}); further drops for this reason are only counted \
         (topos_rs.stats)",
        cause.text(),
        crate::log_text::printable(&String::from_utf8_lossy(r.method)),
        crate::log_text::printable(&String::from_utf8_lossy(r.request_uri)),
        crate::log_text::printable(&String::from_utf8_lossy(r.call_id.unwrap_or(b""))),
    );
}

pub struct Gate;

/// The gate mod_init registers.
pub static GATE: Gate = Gate;

impl EgressGate for Gate {
    fn refuse(&self, buf: &[u8]) -> bool {
        let Some(r) = read_request(buf) else {
            return false;
        };
        match cause_of(&r) {
            Some(cause) => {
                report(cause, &r);
                true
            }
            None => false,
        }
    }
}
