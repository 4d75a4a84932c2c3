//! RPC commands (through Kamailio's `ctl` module, e.g. `kamcmd`):
//! `topos_rs.stats`, `topos_rs.dialog <call-id>`, `topos_rs.rates_reload`.

use super::bindings::{
    rpc_export_t, rpc_t, str_, topos_shim_rpc_add_str, topos_shim_rpc_fault,
    topos_shim_rpc_scan_str, topos_shim_rpc_struct, topos_shim_rpc_struct_int,
    topos_shim_rpc_struct_str,
};
use super::guard::guard_void;
use crate::billing_functions;
use crate::config::Storage;
use crate::dialog::record::decode_stored;
use crate::state::{self, with_store};
use crate::stats;
use crate::store::state::ENDED;
use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// How many records `topos_rs.dialog` reads at most.
const DIALOG_SCAN_LIMIT: usize = 100_000;
/// topos_rs.records counts at most this many records of each kind.
const COUNT_LIMIT: usize = 1_000_000;

/// One RPC reply under construction.
struct Reply {
    rpc: *mut rpc_t,
    ctx: *mut c_void,
}

impl Reply {
    fn fault(&self, code: c_int, text: &str) {
        let t = std::ffi::CString::new(text.replace('\0', " ")).unwrap_or_default();
        // SAFETY: rpc/ctx come from the ctl module for this call.
        unsafe { topos_shim_rpc_fault(self.rpc, self.ctx, code, t.as_ptr()) };
    }

    fn text(&self, s: &str) {
        // SAFETY: as above; the core copies the text.
        unsafe { topos_shim_rpc_add_str(self.rpc, self.ctx, s.as_ptr().cast(), s.len() as c_int) };
    }

    /// A struct of named fields.
    fn fields(&self, fields: &[(&CStr, Field)]) {
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: as above; each field is added to the struct just created.
        unsafe {
            if topos_shim_rpc_struct(self.rpc, self.ctx, &mut handle) < 0 {
                return;
            }
            for (name, value) in fields {
                match value {
                    Field::Int(v) => {
                        topos_shim_rpc_struct_int(self.rpc, handle, name.as_ptr(), *v);
                    }
                    Field::Text(s) => {
                        topos_shim_rpc_struct_str(
                            self.rpc,
                            handle,
                            name.as_ptr(),
                            s.as_ptr().cast(),
                            s.len() as c_int,
                        );
                    }
                }
            }
        }
    }

    /// The first string parameter.
    fn param(&self) -> Option<String> {
        let mut s = str_::default();
        // SAFETY: as above; the result points into the request buffer.
        unsafe {
            if topos_shim_rpc_scan_str(self.rpc, self.ctx, &mut s) < 1 || s.s.is_null() {
                return None;
            }
            Some(
                String::from_utf8_lossy(std::slice::from_raw_parts(
                    s.s as *const u8,
                    s.len.max(0) as usize,
                ))
                .into_owned(),
            )
        }
    }
}

enum Field {
    Int(i32),
    Text(String),
}

fn count(a: &AtomicU64) -> Field {
    Field::Int(a.load(Ordering::Relaxed).min(i32::MAX as u64) as i32)
}

fn money(a: &AtomicI64, decimals: u32) -> String {
    let v = rust_decimal::Decimal::new(a.load(Ordering::Relaxed), decimals);
    crate::billing::tariff::format_money(v, decimals)
}

fn stats_reply(r: &Reply) {
    let Some(s) = stats::get() else {
        return r.fault(500, "statistics not initialized");
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
        (c"requests_hidden", count(&s.requests_hidden)),
        (c"replies_restored", count(&s.replies_restored)),
        (c"replies_reduced", count(&s.replies_reduced)),
        (c"dialogs_created", count(&s.dialogs_created)),
        (
            c"dialogs_active",
            Field::Int(created.saturating_sub(gone).min(i32::MAX as u64) as i32),
        ),
        (c"dialogs_ended", count(&s.dialogs_ended)),
        (c"dialogs_expired", count(&s.dialogs_expired)),
        (c"token_misses", count(&s.token_misses)),
        (c"storage_errors", count(&s.storage_errors)),
        (c"calls_billed", count(&s.calls_billed)),
        (
            c"billed_total",
            Field::Text(format!(
                "{} {currency}",
                money(&s.billed_minor_units, decimals)
            )),
        ),
    ];
    if on_redis {
        fields.retain(|(name, _)| *name != c"dialogs_active" && *name != c"dialogs_expired");
    }
    r.fields(&fields);
}

fn dialog_reply(r: &Reply) {
    let Some(call_id) = r.param() else {
        return r.fault(400, "usage: topos_rs.dialog <call-id>");
    };
    let Some(records) = with_store("topos_rs.dialog", |s| s.scan(b":dlg:", DIALOG_SCAN_LIMIT))
    else {
        return r.fault(500, "storage unavailable");
    };
    let mut found = 0;
    for (key, raw) in records {
        let Ok((record_state, d)) = decode_stored(&raw) else {
            continue;
        };
        if d.call_id != call_id && d.callee_call_id != call_id {
            continue;
        }
        found += 1;
        r.fields(&[
            (
                c"key",
                Field::Text(String::from_utf8_lossy(&key).into_owned()),
            ),
            (c"call_id", Field::Text(d.call_id)),
            (c"callee_call_id", Field::Text(d.callee_call_id)),
            (
                c"state",
                Field::Text(
                    match record_state {
                        crate::store::state::ENDED => "ended",
                        _ if d.confirmed => "confirmed",
                        _ => "early",
                    }
                    .into(),
                ),
            ),
            (c"caller_tag", Field::Text(d.caller_tag)),
            (c"callee_tag", Field::Text(d.callee_tag)),
            (c"caller_contact", Field::Text(d.caller_contact)),
            (c"caller_route", Field::Text(d.caller_route.join(", "))),
            (c"callee_contact", Field::Text(d.callee_contact)),
            (c"callee_route", Field::Text(d.callee_route.join(", "))),
        ]);
    }
    if found == 0 {
        r.fault(404, &format!("no dialog with Call-ID {call_id}"));
    }
}

fn records_reply(r: &Reply) {
    let mut fields = Vec::new();
    for (name, kind) in [(c"dialogs", &b":dlg:"[..]), (c"bills", &b":bill:"[..])] {
        // A billed call's record stays a while as a tombstone: it is not
        // an open bill. (A dialog in its grace time is still counted: its
        // record is there.)
        let billed = |value: &[u8]| kind == b":bill:" && value.first() == Some(&ENDED);
        let count = |s: &mut dyn crate::store::Store| {
            s.scan(kind, COUNT_LIMIT)
                .map(|v| v.iter().filter(|(_, value)| !billed(value)).count())
        };
        let Some(n) = with_store("topos_rs.records", count) else {
            return r.fault(500, "storage unavailable");
        };
        fields.push((name, Field::Int(n.min(i32::MAX as usize) as i32)));
    }
    r.fields(&fields);
}

fn rates_reload_reply(r: &Reply) {
    match billing_functions::reload_rates() {
        Ok(n) => r.text(&format!("rates reloaded: {n} prefixes")),
        Err(e) => r.fault(
            500,
            &format!("rates not reloaded (the previous table stays): {e}"),
        ),
    }
}

macro_rules! rpc_entry {
    ($name:ident, $body:ident, $label:literal) => {
        unsafe extern "C" fn $name(rpc: *mut rpc_t, ctx: *mut c_void) {
            guard_void($label, || $body(&Reply { rpc, ctx }));
        }
    };
}

rpc_entry!(rpc_stats, stats_reply, "topos_rs.stats");
rpc_entry!(rpc_dialog, dialog_reply, "topos_rs.dialog");
rpc_entry!(rpc_records, records_reply, "topos_rs.records");
rpc_entry!(
    rpc_rates_reload,
    rates_reload_reply,
    "topos_rs.rates_reload"
);

#[repr(transparent)]
pub struct Doc([*const c_char; 2]);
// SAFETY: pointers to immutable 'static strings.
unsafe impl Sync for Doc {}

static STATS_DOC: Doc = Doc([
    c"Counters of topos_rs (hiding, dialogs, storage, billing).".as_ptr(),
    std::ptr::null(),
]);
static DIALOG_DOC: Doc = Doc([
    c"The stored dialog records of a Call-ID (addresses included).".as_ptr(),
    std::ptr::null(),
]);
static RECORDS_DOC: Doc = Doc([
    c"Live records in the store: dialogs and open bills (at most 1000000 each).".as_ptr(),
    std::ptr::null(),
]);
static RELOAD_DOC: Doc = Doc([
    c"Re-read billing_rates_file; a bad file keeps the old table.".as_ptr(),
    std::ptr::null(),
]);

const fn entry(
    name: &'static CStr,
    f: unsafe extern "C" fn(*mut rpc_t, *mut c_void),
    doc: &'static Doc,
) -> rpc_export_t {
    rpc_export_t {
        name: name.as_ptr(),
        function: Some(f),
        doc_str: doc.0.as_ptr() as *mut *const c_char,
        flags: 0,
    }
}

pub static mut RPC_METHODS: [rpc_export_t; 5] = [
    entry(c"topos_rs.stats", rpc_stats, &STATS_DOC),
    entry(c"topos_rs.dialog", rpc_dialog, &DIALOG_DOC),
    entry(c"topos_rs.records", rpc_records, &RECORDS_DOC),
    entry(c"topos_rs.rates_reload", rpc_rates_reload, &RELOAD_DOC),
    rpc_export_t {
        name: std::ptr::null(),
        function: None,
        doc_str: std::ptr::null_mut(),
        flags: 0,
    },
];
