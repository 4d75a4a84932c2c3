//! What the RPC commands answer (`topos_rs.stats`, `topos_rs.dialog`,
//! `topos_rs.records`, `topos_rs.rates_reload`), as plain values;
//! `ffi::rpc` hands them to Kamailio's RPC interface.

use crate::billing_functions;
use crate::dialog::record::decode_stored;
use crate::state::{self, with_store};
use crate::stats;
use crate::store::state::{ENDED, PENDING_END};
use crate::store::Store;
use std::sync::atomic::Ordering;

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

fn money(minor_units: i64, decimals: u32) -> String {
    let v = rust_decimal::Decimal::new(minor_units, decimals);
    crate::billing::tariff::format_money(v, decimals)
}

/// `topos_rs.stats`: the counters (`stats::COUNTERS`, as the Kamailio
/// counters show them), then `billed_total`: the billed sum as money.
pub fn stats() -> Answer {
    let Some(s) = stats::get() else {
        return fault(500, "statistics not initialized");
    };
    let cfg = state::config().ok();
    let (decimals, currency) = cfg
        .map(|c| (c.billing.decimals, c.billing.currency.clone()))
        .unwrap_or((2, String::new()));
    let storage = cfg.and_then(|c| c.storage.as_ref());
    let tokens = cfg.map_or(crate::config::TokenMode::Sealed, |c| c.token_mode);
    let mut fields: Fields = stats::shown(storage, tokens)
        // The RPC's integers are 32-bit (as Kamailio's own cnt.get).
        .map(|c| {
            (
                c.name,
                Value::Int(c.value(s).clamp(i32::MIN.into(), i32::MAX.into()) as i32),
            )
        })
        .collect();
    let billed = s.billed_minor_units.load(Ordering::Relaxed);
    fields.push((
        "billed_total",
        Value::Text(format!("{} {currency}", money(billed, decimals))),
    ));
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
        // A billed call's record stays a while as a tombstone, and a BYE
        // journaled during a store outage may wait for its answer (a
        // pending end): neither is an open bill. (A dialog in its grace
        // time is still counted: its record is there.)
        let billed = |value: &[u8]| {
            kind == b":bill:" && matches!(value.first(), Some(&ENDED | &PENDING_END))
        };
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

/// `topos_rs.keys_reload`: re-reads the token key file for every worker.
pub fn keys_reload() -> Answer {
    match crate::token_keys::reload() {
        Ok(n) => Answer::Text(format!("token keys reloaded: {n} (the first seals)")),
        Err(e) => fault(
            500,
            &format!("token keys not reloaded (the keys in use stay): {e}"),
        ),
    }
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
