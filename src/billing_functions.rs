//! `billing_start()` and `billing_stop()`: the billing script functions,
//! on the safe `SipMsg` wrapper, the per-process store and the pure
//! `billing` module.

use crate::billing::call::{billing_key, AnswerRecord, Bill, Side};
use crate::billing::rates::RateTable;
use crate::billing::{BillingConfig, CdrSink};
use crate::error::{Error, Result};
use crate::ffi::guard::Ret;
use crate::ffi::msg::SipMsg;
use crate::sip::dialog::DialogIds;
use crate::state::{self, with_store};
use crate::stats;
use crate::store::lmdb::now_ms;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A call's billing record lives at most this long: a call still up after
/// a day is not billed (its record has expired).
pub const RECORD_TTL: Duration = Duration::from_secs(86_400);

/// `billing_stop()` return value for a BYE with nothing to bill (an
/// unanswered call, a BYE already billed, or an unknown dialog).
pub const NOTHING_TO_BILL: i32 = -2;

/// The last bill of this process, readable as `$billing(...)` while the
/// script still handles the BYE that produced it.
struct LastBill {
    msg: (usize, u32, i32),
    fields: [String; 6],
}

thread_local! {
    /// This process's billing configuration and the rates generation it
    /// was loaded at (`topos_rs.rates_reload` bumps the generation).
    static CURRENT: RefCell<Option<(u64, Rc<BillingConfig>)>> = const { RefCell::new(None) };
    static LAST_BILL: RefCell<Option<LastBill>> = const { RefCell::new(None) };
    static DEFERRED_START: Cell<(usize, u32, i32)> = const { Cell::new((0, 0, 0)) };
}

/// Names of the `$billing(name)` fields, in index order.
pub const BILLING_FIELDS: [&str; 6] = ["duration", "billed", "cost", "currency", "rate", "hangup"];

/// `billing_start()`: on the first 2xx to an INVITE, remember when the call
/// was answered (once per dialog: a retransmitted 2xx keeps the first time).
pub fn billing_start(msg: &mut SipMsg) -> Result<bool> {
    if !msg.is_reply() {
        return Err(Error::new("billing_start() is for replies (onreply_route)"));
    }
    let mut ids = DialogIds::from_message(msg.buf())?;
    // Bills are keyed by the Call-ID the caller's side knows. With
    // mask_callid the callee's 2xx carries another one; the caller's is
    // known once tm has matched the reply to its transaction, which has not
    // happened yet in the core onreply_route: then start when it has.
    match state::caller_call_id(msg.identity()) {
        Some(id) => ids.call_id = id.into(),
        None if state::config()?.mask_callid => {
            DEFERRED_START.with(|d| d.set(msg.identity()));
            return Ok(true);
        }
        None => {}
    }
    start(msg, ids)
}

/// Runs a billing_start() that the core onreply_route deferred, now that
/// the reply's transaction (and so the caller side's Call-ID) is known.
pub fn run_deferred_start(msg: &mut SipMsg) {
    if DEFERRED_START.with(|d| d.get()) != msg.identity() {
        return;
    }
    DEFERRED_START.with(|d| d.set((0, 0, 0)));
    let result = DialogIds::from_message(msg.buf())
        .map_err(Error::from)
        .and_then(|mut ids| {
            if let Some(id) = state::caller_call_id(msg.identity()) {
                ids.call_id = id.into();
            }
            start(msg, ids)
        });
    if let Err(e) = result {
        log::error!("billing_start: {e}");
    }
}

fn start(msg: &SipMsg, ids: DialogIds) -> Result<bool> {
    let status = msg.status();
    if !(200..300).contains(&status) || !ids.cseq_method.eq_ignore_ascii_case("INVITE") {
        log::debug!(
            "billing_start: {status} to {} is not a 2xx to an INVITE; nothing recorded",
            ids.cseq_method
        );
        return Ok(false);
    }
    let tag = ids
        .from
        .tag
        .as_deref()
        .ok_or_else(|| Error::new("billing_start: the From header has no tag"))?;
    let key = billing_key(ids.call_id.as_bytes(), tag.as_bytes());
    let record = AnswerRecord {
        answer_ms: now_ms(),
        from_user: ids.from.user().to_string(),
        to_user: ids.to.user().to_string(),
    }
    .encode();
    match with_store("billing_start", |s| s.put_new(&key, &record, RECORD_TTL)) {
        Some(created) => {
            if created {
                log::debug!("billing_start: call {} answered", ids.call_id);
            } else {
                log::debug!(
                    "billing_start: call {} already answered; first time kept",
                    ids.call_id
                );
            }
            Ok(true)
        }
        None => Ok(false),
    }
}

/// `billing_stop()`: on a BYE from either side, take the call's record
/// (atomically: only one BYE, on one node, ever gets it), price the call,
/// log the billing line and write the CDR.
pub fn billing_stop(msg: &mut SipMsg, node: i64) -> Result<Ret> {
    if !msg.is_request() {
        return Err(Error::new("billing_stop() is for requests (request_route)"));
    }
    let end_ms = now_ms();
    let mut ids = DialogIds::from_message(msg.buf())?;
    // After topos_request(), the Call-ID the caller's side knows.
    if let Some(id) = state::caller_call_id(msg.identity()) {
        ids.call_id = id.into();
    }
    // The record is keyed by the caller's tag: the From-tag of a BYE from
    // the caller, the To-tag of a BYE from the callee.
    let candidates = [(&ids.from.tag, Side::Caller), (&ids.to.tag, Side::Callee)];
    let mut found = None;
    for (tag, side) in candidates {
        let Some(tag) = tag else { continue };
        let key = billing_key(ids.call_id.as_bytes(), tag.as_bytes());
        match with_store("billing_stop", |s| s.take(&key)) {
            Some(Some(raw)) => {
                found = Some((raw, side));
                break;
            }
            Some(None) => {}
            None => return Ok(Ret::False),
        }
    }
    let Some((raw, side)) = found else {
        log::debug!("billing_stop: nothing to bill for Call-ID {}", ids.call_id);
        return Ok(Ret::Code(NOTHING_TO_BILL));
    };
    let record = AnswerRecord::decode(&raw).map_err(|e| {
        Error::new(format!(
            "billing_stop: the billing record of Call-ID {} is unreadable ({e}); not billed",
            ids.call_id
        ))
    })?;
    let cfg = current_config()?;
    let bill = Bill::new(&cfg, &ids.call_id, record, end_ms, side, node);
    log::info!("{}", bill.log_line());
    write_cdr(&cfg, &bill);
    if let Some(st) = stats::get() {
        st.calls_billed.fetch_add(1, Ordering::Relaxed);
        let mut minor = bill.charge.cost;
        minor.rescale(cfg.decimals);
        st.billed_minor_units
            .fetch_add(minor.mantissa() as i64, Ordering::Relaxed);
    }
    LAST_BILL.with(|l| {
        *l.borrow_mut() = Some(LastBill {
            msg: msg.identity(),
            fields: [
                bill.charge.duration.to_string(),
                bill.charge.billed_seconds.to_string(),
                bill.cost_text(),
                bill.currency.clone(),
                bill.tariff.rate.to_string(),
                bill.hangup.as_str().to_string(),
            ],
        })
    });
    Ok(Ret::True)
}

/// Writes the CDR to the configured sink. A CDR that cannot be written is
/// logged in full, so the bill is never lost.
fn write_cdr(cfg: &BillingConfig, bill: &Bill) {
    let json = bill.cdr_json();
    let failed = match &cfg.cdr {
        CdrSink::LogOnly => return,
        CdrSink::File(path) => {
            let mut line = json.clone().into_bytes();
            line.push(b'\n');
            // One write of the whole line with O_APPEND: lines of several
            // processes never interleave.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(&line))
                .err()
                .map(|e| format!("cannot append to {}: {e}", path.display()))
        }
        CdrSink::RedisStream(stream) => with_store("billing CDR", |s| {
            s.append_to_stream(
                stream.as_bytes(),
                &[
                    ("call_id", bill.call_id.as_bytes()),
                    ("cdr", json.as_bytes()),
                ],
            )
        })
        .is_none()
        .then(|| format!("cannot add to Redis stream {stream}")),
    };
    if let Some(why) = failed {
        log::error!("CDR not written ({why}); CDR: {json}");
    }
}

/// `$billing(<field>)` for the message being processed: runs `f` on the
/// value from the call `billing_stop()` just billed; None if this message
/// billed nothing.
pub fn with_billing_field<T>(msg: &SipMsg, field: usize, f: impl FnOnce(&str) -> T) -> Option<T> {
    LAST_BILL.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|b| b.msg == msg.identity())
            .and_then(|b| b.fields.get(field))
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
fn current_config() -> Result<Rc<BillingConfig>> {
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
        .ok_or_else(|| Error::new("no billing_rates_file is configured"))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::new(format!("rates file {}: cannot read: {e}", path.display())))?;
    let table = RateTable::parse(&path.display().to_string(), &text, &base.default)
        .map_err(|e| Error::new(e.to_string()))?;
    with_store("topos_rs.rates_reload", |s| {
        s.put(&rates_key(), text.as_bytes(), RATES_TTL)
    })
    .ok_or_else(|| Error::new("storage unavailable"))?;
    if let Some(st) = stats::get() {
        st.rates_generation.fetch_add(1, Ordering::AcqRel);
    }
    Ok(table.len())
}
