//! What the RPC commands answer (`topos_rs.stats`, `topos_rs.dialog`,
//! `topos_rs.records`, `topos_rs.rates_reload`), as plain values;
//! `ffi::rpc` hands them to Kamailio's RPC interface.

use crate::billing_functions;
use crate::config::Storage;
use crate::dialog::record::decode_stored;
use crate::state::{self, with_store};
use crate::stats;
use crate::store::state::ENDED;
use crate::store::Store;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// How many records `topos_rs.dialog` reads at most.
const DIALOG_SCAN_LIMIT: usize = 100_000;
/// topos_rs.records counts at most this many records of each kind.
const COUNT_LIMIT: usize = 1_000_000;

/// One field of an answer.
pub enum Value {
    Int(i32),
    Text(String),
}

/// A struct of named fields, in order.
pub type Fields = Vec<(&'static str, Value)>;

/// An RPC command's answer.
pub enum Answer {
    /// An error code and its text.
    Fault(i32, String),
    Text(String),
    /// One or more structs.
    Structs(Vec<Fields>),
}

fn fault(code: i32, text: &str) -> Answer {
    Answer::Fault(code, text.to_string())
}

fn count(a: &AtomicU64) -> Value {
    Value::Int(a.load(Ordering::Relaxed).min(i32::MAX as u64) as i32)
}

fn money(a: &AtomicI64, decimals: u32) -> String {
    let v = rust_decimal::Decimal::new(a.load(Ordering::Relaxed), decimals);
    crate::billing::tariff::format_money(v, decimals)
}

/// `topos_rs.stats`: the counters.
pub fn stats() -> Answer {
    let Some(s) = stats::get() else {
        return fault(500, "statistics not initialized");
    };
    let (decimals, currency) = state::config()
        .map(|c| (c.billing.decimals, c.billing.currency.clone()))
        .unwrap_or((2, String::new()));
    let created = s.dialogs_created.load(Ordering::Relaxed);
    let gone = s.dialogs_ended.load(Ordering::Relaxed) + s.dialogs_expired.load(Ordering::Relaxed);
    // Redis expires dialogs itself, unseen, and other nodes end dialogs
    // this one created: there only the store knows how many are active
    // (topos_rs.records), so the counters that would guess are left out.
    let on_redis = state::config().is_ok_and(|c| matches!(c.storage, Some(Storage::Redis { .. })));
    let mut fields = vec![
        ("requests_hidden", count(&s.requests_hidden)),
        ("replies_restored", count(&s.replies_restored)),
        ("replies_reduced", count(&s.replies_reduced)),
        ("dialogs_created", count(&s.dialogs_created)),
        (
            "dialogs_active",
            Value::Int(created.saturating_sub(gone).min(i32::MAX as u64) as i32),
        ),
        ("dialogs_ended", count(&s.dialogs_ended)),
        ("dialogs_expired", count(&s.dialogs_expired)),
        ("token_misses", count(&s.token_misses)),
        ("dropped_token_requests", count(&s.dropped_token_requests)),
        ("dropped_ack_cancel", count(&s.dropped_ack_cancel)),
        (
            "dropped_refused_requests",
            count(&s.dropped_refused_requests),
        ),
        ("storage_errors", count(&s.storage_errors)),
        ("calls_billed", count(&s.calls_billed)),
        (
            "billed_total",
            Value::Text(format!(
                "{} {currency}",
                money(&s.billed_minor_units, decimals)
            )),
        ),
    ];
    if on_redis {
        fields.retain(|(name, _)| *name != "dialogs_active" && *name != "dialogs_expired");
    }
    Answer::Structs(vec![fields])
}

/// `topos_rs.dialog <call-id>`: the stored records of a Call-ID (as either
/// side knows it).
pub fn dialog(call_id: Option<String>) -> Answer {
    let Some(call_id) = call_id else {
        return fault(400, "usage: topos_rs.dialog <call-id>");
    };
    let Some(records) = with_store("topos_rs.dialog", |s| s.scan(b":dlg:", DIALOG_SCAN_LIMIT))
    else {
        return fault(500, "storage unavailable");
    };
    let mut found = Vec::new();
    for (key, raw) in records {
        let Ok((record_state, d)) = decode_stored(&raw) else {
            continue;
        };
        if d.call_id != call_id && d.callee_call_id != call_id {
            continue;
        }
        let state = match record_state {
            ENDED => "ended",
            _ if d.confirmed => "confirmed",
            _ => "early",
        };
        found.push(vec![
            (
                "key",
                Value::Text(String::from_utf8_lossy(&key).into_owned()),
            ),
            ("call_id", Value::Text(d.call_id)),
            ("callee_call_id", Value::Text(d.callee_call_id)),
            ("state", Value::Text(state.into())),
            ("caller_tag", Value::Text(d.caller_tag)),
            ("callee_tag", Value::Text(d.callee_tag)),
            ("caller_contact", Value::Text(d.caller_contact)),
            ("caller_route", Value::Text(d.caller_route.join(", "))),
            ("callee_contact", Value::Text(d.callee_contact)),
            ("callee_route", Value::Text(d.callee_route.join(", "))),
        ]);
    }
    if found.is_empty() {
        return fault(404, &format!("no dialog with Call-ID {call_id}"));
    }
    Answer::Structs(found)
}

/// `topos_rs.records`: live dialogs and open bills in the store.
pub fn records() -> Answer {
    let mut fields = Vec::new();
    for (name, kind) in [("dialogs", &b":dlg:"[..]), ("bills", &b":bill:"[..])] {
        // A billed call's record stays a while as a tombstone: it is not
        // an open bill. (A dialog in its grace time is still counted: its
        // record is there.)
        let billed = |value: &[u8]| kind == b":bill:" && value.first() == Some(&ENDED);
        let count = |s: &mut dyn Store| {
            s.scan(kind, COUNT_LIMIT)
                .map(|v| v.iter().filter(|(_, value)| !billed(value)).count())
        };
        let Some(n) = with_store("topos_rs.records", count) else {
            return fault(500, "storage unavailable");
        };
        fields.push((name, Value::Int(n.min(i32::MAX as usize) as i32)));
    }
    Answer::Structs(vec![fields])
}

/// `topos_rs.rates_reload`: re-reads the rates file for every worker.
pub fn rates_reload() -> Answer {
    match billing_functions::reload_rates() {
        Ok(n) => Answer::Text(format!("rates reloaded: {n} prefixes")),
        Err(e) => fault(
            500,
            &format!("rates not reloaded (the previous table stays): {e}"),
        ),
    }
}
