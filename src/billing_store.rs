//! A bill's store operations, the same whether the event is live (the 2xx
//! or BYE being handled) or comes from the billing journal (an answer or a
//! BYE that happened while the store was unavailable): the store is the one
//! place that decides, atomically, which end of a call bills it. And the
//! bill itself once decided: the log line, the CDR, the counters.
//!
//! A bill key holds, in its first byte (`store::state`):
//! - `ACTIVE`: answered, not ended; the payload is the `AnswerRecord`;
//! - `ENDED`: billed (a tombstone for `BILL_GRACE`);
//! - `PENDING_END`: ended by a journaled BYE before any answer reached
//!   the store (the answer waits in another node's journal); the payload is
//!   the `PendingEnd`. The answer, once written, bills the call.

use crate::billing::call::{AnswerRecord, Bill};
use crate::billing::journal::{AnswerEvent, EndEvent, PendingEnd};
use crate::billing::{BillingConfig, CdrSink};
use crate::billing_functions::{current_config, BILL_GRACE, RECORD_TTL};
use crate::clock::now_ms;
use crate::error::Error;
use crate::log_text::printable;
use crate::state::{store_op, with_store};
use crate::stats;
use crate::store::{state, Guard, Lifecycle, Lived, StoreResult};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

const WHAT: &str = "billing";

/// Only a bill in this state is ended by a BYE.
const OPEN: Guard<'static> = Guard {
    offset: 0,
    expect: &[state::ACTIVE],
};

/// Only a pending end is ended by an answer.
const PENDING: Guard<'static> = Guard {
    offset: 0,
    expect: &[state::PENDING_END],
};

/// What `close_bill` found.
#[derive(Debug)]
pub enum Closed {
    /// This end billed the call (the bill is logged and written already).
    Billed(Box<Bill>),
    /// Another end came first (billed, or a pending end): nothing to bill.
    AlreadyEnded,
    /// No bill under any key: the call was not answered, or its answer is
    /// in no store yet.
    NoBill,
}

/// Writes a call's answer: opens its bill, unless one is there already
/// (the first answer is kept). If a journaled BYE ended the call before
/// the answer got here (a pending end), the call is billed now, from the
/// answer's time to the BYE's.
///
/// A journaled answer keeps its real time: the bill lives RECORD_TTL from
/// the answer, not from now; one older than that is not billed (as a call
/// still up after RECORD_TTL is not).
pub fn store_answer(a: &AnswerEvent) -> StoreResult<()> {
    let age = Duration::from_millis(now_ms().saturating_sub(a.record.answer_ms));
    let Some(ttl) = RECORD_TTL.checked_sub(age).filter(|t| !t.is_zero()) else {
        log::warn!(
            "billing: an answer of {} s ago is older than a bill lives ({} s); not billed",
            age.as_secs(),
            RECORD_TTL.as_secs()
        );
        return Ok(());
    };
    let mut value = vec![state::ACTIVE];
    value.extend_from_slice(&a.record.encode());
    // Twice at most: a pending end that expires between the two steps
    // leaves the key free for the answer.
    for _ in 0..2 {
        if store_op(WHAT, |s| s.put_new(&a.key, &value, ttl))? {
            return Ok(());
        }
        match store_op(WHAT, |s| {
            s.get_lifecycle(&a.key, Lifecycle::End(BILL_GRACE), Some(PENDING))
        })? {
            Lived::EndedNow(raw) => {
                match PendingEnd::decode(raw.get(1..).unwrap_or_default()) {
                    Ok(end) => {
                        let cfg = current_config().map_err(store_error)?;
                        let bill = Bill::new(
                            &cfg,
                            &end.call_id,
                            a.record.clone(),
                            end.end_ms,
                            end.hangup,
                            end.node,
                        );
                        bill_call(&cfg, &bill);
                    }
                    Err(e) => log::error!("billing: unreadable pending end ({e}); not billed"),
                }
                return Ok(());
            }
            Lived::Missing => continue,
            // Answered before (a retransmitted 2xx, a replay run twice) or
            // billed already.
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Ends the call's bill for BYE `e`: the first key of `e.candidates()`
/// that holds an open bill is ended in one atomic step (exactly one end
/// ever gets it, on any node) and the call is billed from its answer to
/// `e.end_ms`.
pub fn close_bill(e: &EndEvent) -> StoreResult<Closed> {
    for (key, hangup) in e.candidates() {
        match store_op(WHAT, |s| {
            s.get_lifecycle(&key, Lifecycle::End(BILL_GRACE), Some(OPEN))
        })? {
            Lived::EndedNow(raw) => {
                let record =
                    AnswerRecord::decode(raw.get(1..).unwrap_or_default()).map_err(|error| {
                        store_error(Error::UnreadableBill {
                            call_id: e.call_id.clone(),
                            error,
                        })
                    })?;
                let cfg = current_config().map_err(store_error)?;
                let bill = Bill::new(&cfg, &e.call_id, record, e.end_ms, hangup, e.node);
                bill_call(&cfg, &bill);
                return Ok(Closed::Billed(Box::new(bill)));
            }
            Lived::Missing => continue,
            // Ended before, or a pending end of another BYE: the first end
            // counts.
            _ => return Ok(Closed::AlreadyEnded),
        }
    }
    Ok(Closed::NoBill)
}

/// Leaves BYE `e`'s end under each key it may close that holds nothing,
/// for an answer that is still in another node's journal. True if a key
/// was taken meanwhile (an answer arrived: close the bill again).
pub fn leave_pending_end(e: &EndEvent) -> StoreResult<bool> {
    let mut raced = false;
    for (key, hangup) in e.candidates() {
        let mut value = vec![state::PENDING_END];
        value.extend_from_slice(
            &PendingEnd {
                call_id: e.call_id.clone(),
                end_ms: e.end_ms,
                hangup,
                node: e.node,
            }
            .encode(),
        );
        raced |= !store_op(WHAT, |s| s.put_new(&key, &value, RECORD_TTL))?;
    }
    Ok(raced)
}

/// A non-store error in a store step (configuration, an unreadable bill):
/// reported like a backend error, never taken for an outage.
fn store_error(e: Error) -> crate::store::StoreError {
    crate::store::StoreError::Backend(e.to_string())
}

/// A decided bill: the log line the requirement fixes, the CDR, the
/// counters.
pub fn bill_call(cfg: &BillingConfig, bill: &Bill) {
    log::info!("{}", bill.log_line());
    write_cdr(cfg, bill);
    if let Some(st) = stats::get() {
        st.calls_billed.fetch_add(1, Ordering::Relaxed);
        let mut minor = bill.charge.cost;
        minor.rescale(cfg.decimals);
        st.billed_minor_units
            .fetch_add(minor.mantissa() as i64, Ordering::Relaxed);
    }
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

/// The error line of a billing event neither the store nor the billing
/// journal took (`why`: the store's error, or the journal's).
pub fn lost(what: &str, call_id: &str, why: &dyn std::fmt::Display, consequence: &str) {
    log::error!("{what}: {why}; call {} {consequence}", printable(call_id));
}
