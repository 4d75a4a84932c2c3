//! `billing_start()` and `billing_stop()`: the billing script functions,
//! on the safe `SipMsg` wrapper, the per-process store and the pure
//! `billing` module.

use crate::billing::call::{billing_key, bounded_user, AnswerRecord};
use crate::billing::journal::{AnswerEvent, EndEvent};
use crate::billing::rates::RateTable;
use crate::billing::BillingConfig;
use crate::billing_journal::{self, Outcome};
use crate::billing_store::{lost, Closed};
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::ffi::msg::SipMsg;
use crate::ffi::route::{current_route, Route};
use crate::ffi::tm::Transaction;
use crate::ffi::tx_state::Kind;
use crate::log_text::printable;
use crate::message_context;
use crate::script_result::ScriptResult;
use crate::sip::dialog_ids::DialogIds;
use crate::state::{self, with_store};
use crate::stats;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A call's billing record lives at most this long: a call still up after
/// a day is not billed (its record has expired).
pub const RECORD_TTL: Duration = Duration::from_secs(86_400);

/// A billed call's record stays this long as a tombstone: longer than tm
/// keeps the INVITE transaction a late 2xx could still match.
pub const BILL_GRACE: Duration = Duration::from_secs(300);

thread_local! {
    /// This process's billing configuration and the rates generation it
    /// was loaded at (`topos_rs.rates_reload` bumps the generation).
    static CURRENT: RefCell<Option<(u64, Rc<BillingConfig>)>> = const { RefCell::new(None) };
}

/// Names of the `$billing(name)` fields, in index order.
pub const BILLING_FIELDS: [&str; 6] = ["duration", "billed", "cost", "currency", "rate", "hangup"];

/// `billing_start()`: on the first 2xx to a dialog-creating INVITE that
/// topos_request() hid, remember when the call was answered (once per
/// dialog: a retransmitted 2xx keeps the first time).
///
/// Only a reply that tm matched to such a transaction counts, so a stray
/// or forged 2xx (no transaction behind it), a 2xx to a re-INVITE, or a
/// 2xx after the call already failed creates no state. In a named reply
/// route tm has matched the reply already; in the core `onreply_route` it
/// has not, so the start is noted and done when tm matches the reply (true
/// is returned then: "will be recorded if it belongs to a hidden call").
pub fn billing_start(msg: &mut SipMsg) -> Result<bool> {
    if !msg.is_reply() {
        return Err(Error::Misuse(
            "billing_start() is for replies (onreply_route)",
        ));
    }
    if current_route() == Route::TmOnReply {
        return match Transaction::current() {
            Some(t) => start_for(msg, &t),
            None => Ok(false),
        };
    }
    message_context::write(msg.identity(), |c| c.deferred_billing_start = true);
    Ok(true)
}

/// Runs a billing_start() that the core onreply_route noted, now that tm
/// matched the reply to hidden transaction `t`.
pub fn run_deferred_start(msg: &mut SipMsg, t: &Transaction) {
    let noted = message_context::read(msg.identity(), |c| c.deferred_billing_start);
    if !noted {
        return;
    }
    message_context::write(msg.identity(), |c| c.deferred_billing_start = false);
    if let Err(e) = start_for(msg, t) {
        log::error!("billing_start: {e}");
    }
}

/// Starts the bill if `msg` is a 2xx of hidden dialog-creating INVITE `t`
/// that has not failed yet. From, To, Call-ID and the caller's tag come
/// from the INVITE as the caller sent it (the original direction).
fn start_for(msg: &SipMsg, t: &Transaction) -> Result<bool> {
    let status = msg.status();
    let initial = t.hiding_state().is_some_and(|s| s.kind() == Kind::Initial);
    if !initial || !(200..300).contains(&status) {
        log::debug!("billing_start: not a 2xx of a hidden dialog-creating request");
        return Ok(false);
    }
    let request = t.request().ok_or(Error::Kamailio(
        "billing_start: the transaction has no request",
    ))?;
    let ids = DialogIds::from_message(request.buf())?;
    if !ids.cseq_method.eq_ignore_ascii_case("INVITE") {
        return Ok(false);
    }
    if t.uas_status() >= 300 {
        log::warn!(
            "billing_start: a {status} after the call was answered {} (Call-ID {}); not billed",
            t.uas_status(),
            printable(&ids.call_id)
        );
        return Ok(false);
    }
    let tag = ids.from.tag.as_deref().ok_or(Error::Malformed(
        "billing_start: the From header has no tag",
    ))?;
    let answer = AnswerEvent {
        key: billing_key(ids.call_id.as_bytes(), tag.as_bytes()),
        record: AnswerRecord {
            answer_ms: now_ms(),
            from_user: bounded_user(ids.from.user()),
            to_user: bounded_user(ids.to.user()),
        },
    };
    match billing_journal::answer(&answer) {
        Ok(Outcome::Stored(())) => {
            log::debug!("billing_start: call {} answered", ids.call_id);
            Ok(true)
        }
        Ok(Outcome::Journaled | Outcome::AlreadyJournaled) => {
            log::debug!(
                "billing_start: call {} answered; kept in the billing journal until the store is back",
                ids.call_id
            );
            Ok(true)
        }
        Err(e) => {
            lost("billing_start", &ids.call_id, &e, "will not be billed");
            Ok(false)
        }
    }
}

/// `billing_stop()`: on a BYE from either side, take the call's record
/// (atomically: only one BYE, on one node, ever gets it), price the call,
/// log the billing line and write the CDR.
pub fn billing_stop(msg: &mut SipMsg, node: i64) -> Result<ScriptResult> {
    if !msg.is_request() {
        return Err(Error::Misuse(
            "billing_stop() is for requests (request_route)",
        ));
    }
    let end_ms = now_ms();
    let mut ids = DialogIds::from_message(msg.buf())?;
    // After topos_request(), the Call-ID the caller's side knows.
    if let Some(id) = message_context::read(msg.identity(), |c| c.caller_call_id.clone()) {
        ids.call_id = id.into();
    }
    // The bill is keyed by the caller's tag: the From-tag of a BYE from
    // the caller, the To-tag of a BYE from the callee (`EndEvent::
    // candidates`). The bill is ended, not deleted: it stays BILL_GRACE as
    // a tombstone, so a late or forged 2xx cannot start the call again and
    // a second BYE (either side, any node) bills nothing.
    // A BYE Kamailio sends itself (dialog module, tm:local-request) bills
    // like any other; the CDR says who hung up.
    let end = EndEvent {
        call_id: ids.call_id.to_string(),
        from_tag: ids.from.tag.as_deref().map(str::to_string),
        to_tag: ids.to.tag.as_deref().map(str::to_string),
        end_ms,
        by_kamailio: current_route() == Route::Local,
        node,
    };
    let bill = match billing_journal::end(&end) {
        Ok(Outcome::Stored(Closed::Billed(bill))) => bill,
        Ok(Outcome::Stored(Closed::AlreadyEnded | Closed::NoBill))
        | Ok(Outcome::AlreadyJournaled) => {
            log::debug!("billing_stop: nothing to bill for Call-ID {}", ids.call_id);
            return Ok(ScriptResult::NothingToBill);
        }
        Ok(Outcome::Journaled) => {
            log::debug!(
                "billing_stop: the end of call {} is kept in the billing journal until the store is back",
                ids.call_id
            );
            return Ok(ScriptResult::Journaled);
        }
        Err(e) => {
            // Never lost without a line: a retransmitted BYE tries again.
            lost("billing_stop", &ids.call_id, &e, "not billed by this BYE");
            return Ok(ScriptResult::False);
        }
    };
    // Readable as `$billing(...)` while the script still handles this BYE.
    let fields = vec![
        bill.charge.duration.to_string(),
        bill.charge.billed_seconds.to_string(),
        bill.cost_text(),
        bill.currency.clone(),
        bill.tariff.rate.to_string(),
        bill.hangup.as_str().to_string(),
    ];
    message_context::write(msg.identity(), |c| c.last_bill = Some(fields));
    Ok(ScriptResult::True)
}

/// `$billing(<field>)` for the message being processed: runs `f` on the
/// value from the call `billing_stop()` just billed; None if this message
/// billed nothing.
pub fn with_billing_field<T>(msg: &SipMsg, field: usize, f: impl FnOnce(&str) -> T) -> Option<T> {
    message_context::read(msg.identity(), |c| {
        c.last_bill
            .as_ref()
            .and_then(|fields| fields.get(field))
            .map(|v| f(v))
    })
}

/// Where `topos_rs.rates_reload` leaves the checked rates file for the
/// workers: one copy for all, so every worker bills with the same table
/// whatever happens to the file afterwards.
fn rates_key() -> Vec<u8> {
    crate::store::key::dialog_key("rates", b"rates", b"table")
}

/// Kept until the next reload.
const RATES_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The billing configuration with the rates table of the latest
/// `topos_rs.rates_reload` (loaded once per worker per reload; if the store
/// cannot be read the worker keeps its table and tries again next time).
pub fn current_config() -> Result<Rc<BillingConfig>> {
    let base = &state::config()?.billing;
    let generation = stats::get().map_or(0, |s| s.rates_generation.load(Ordering::Acquire));
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let loaded = c.as_ref().map(|(g, _)| *g);
        if loaded != Some(generation) {
            let mut cfg = c
                .as_ref()
                .map_or_else(|| base.clone(), |(_, cfg)| BillingConfig::clone(cfg));
            let mut at = generation;
            if generation > 0 {
                match with_store("rates reload", |s| s.get(&rates_key())) {
                    Some(Some(text)) => {
                        let file = base.rates_file.as_ref().map(|p| p.display().to_string());
                        match RateTable::parse(
                            &file.unwrap_or_default(),
                            &String::from_utf8_lossy(&text),
                            &base.default,
                        ) {
                            Ok(t) => cfg.rates = t,
                            Err(e) => log::error!("reloaded rates unreadable: {e}"),
                        }
                    }
                    _ => at = loaded.unwrap_or(0), // retry at the next bill
                }
            }
            *c = Some((at, Rc::new(cfg)));
        }
        Ok(Rc::clone(&c.as_ref().expect("set above").1))
    })
}

/// `topos_rs.rates_reload`: checks the rates file and, if it is good,
/// hands it to every worker (through the store). Returns the number of
/// prefixes.
pub fn reload_rates() -> Result<usize> {
    let base = &state::config()?.billing;
    let path = base
        .rates_file
        .as_ref()
        .ok_or(Error::Config("no billing_rates_file is configured"))?;
    let text = std::fs::read_to_string(path).map_err(|e| Error::RatesFileUnreadable {
        path: path.display().to_string(),
        error: e.to_string(),
    })?;
    let table = RateTable::parse(&path.display().to_string(), &text, &base.default)?;
    with_store("topos_rs.rates_reload", |s| {
        s.put(&rates_key(), text.as_bytes(), RATES_TTL)
    })
    .ok_or(Error::Storage("storage unavailable"))?;
    if let Some(st) = stats::get() {
        st.rates_generation.fetch_add(1, Ordering::AcqRel);
    }
    Ok(table.len())
}
