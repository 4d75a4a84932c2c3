//! RPC commands (through Kamailio's `ctl` module, e.g. `kamcmd`):
//! `topos_rs.stats`, `topos_rs.dialog <call-id>`, `topos_rs.records`,
//! `topos_rs.rates_reload`. What each answers is `crate::rpc_commands`'s;
//! this file reads the parameters and writes the answers.

use super::bindings::{
    rpc_export_t, rpc_t, str_, topos_shim_rpc_add_str, topos_shim_rpc_fault,
    topos_shim_rpc_scan_str, topos_shim_rpc_struct, topos_shim_rpc_struct_int,
    topos_shim_rpc_struct_str,
};
use super::guard::guard_void;
use crate::rpc_commands::{self, Answer, Value};
use std::ffi::{c_void, CStr, CString};
use std::os::raw::{c_char, c_int};

/// One RPC reply under construction.
struct Reply {
    rpc: *mut rpc_t,
    ctx: *mut c_void,
}

impl Reply {
    fn fault(&self, code: c_int, text: &str) {
        let t = c_text(text);
        // SAFETY: rpc/ctx come from the ctl module for this call.
        unsafe { topos_shim_rpc_fault(self.rpc, self.ctx, code, t.as_ptr()) };
    }

    fn text(&self, s: &str) {
        // SAFETY: as above; the core copies the text.
        unsafe { topos_shim_rpc_add_str(self.rpc, self.ctx, s.as_ptr().cast(), s.len() as c_int) };
    }

    /// A struct of named fields.
    fn fields(&self, fields: &[(&str, Value)]) {
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: as above; each field is added to the struct just created
        // (the core copies names and values).
        unsafe {
            if topos_shim_rpc_struct(self.rpc, self.ctx, &mut handle) < 0 {
                return;
            }
            for (name, value) in fields {
                let name = c_text(name);
                match value {
                    Value::Int(v) => {
                        topos_shim_rpc_struct_int(self.rpc, handle, name.as_ptr(), *v);
                    }
                    Value::Text(s) => {
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

    /// Sends a command's answer.
    fn send(&self, answer: Answer) {
        match answer {
            Answer::Fault(code, text) => self.fault(code, &text),
            Answer::Text(text) => self.text(&text),
            Answer::Structs(structs) => structs.iter().for_each(|f| self.fields(f)),
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

/// `text` for the C side (a NUL inside becomes a space).
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

macro_rules! rpc_entry {
    ($name:ident, $label:literal, |$r:ident| $answer:expr) => {
        unsafe extern "C" fn $name(rpc: *mut rpc_t, ctx: *mut c_void) {
            guard_void($label, || {
                let $r = Reply { rpc, ctx };
                $r.send($answer)
            });
        }
    };
}

rpc_entry!(rpc_stats, "topos_rs.stats", |r| rpc_commands::stats());
rpc_entry!(rpc_dialog, "topos_rs.dialog", |r| rpc_commands::dialog(
    r.param()
));
rpc_entry!(rpc_records, "topos_rs.records", |r| rpc_commands::records());
rpc_entry!(rpc_rates_reload, "topos_rs.rates_reload", |r| {
    rpc_commands::rates_reload()
});
rpc_entry!(rpc_keys_reload, "topos_rs.keys_reload", |r| {
    rpc_commands::keys_reload()
});

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

static KEYS_RELOAD_DOC: Doc = Doc([
    c"Re-read token_key_file; a bad file keeps the keys in use.".as_ptr(),
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

pub static mut RPC_METHODS: [rpc_export_t; 6] = [
    entry(c"topos_rs.stats", rpc_stats, &STATS_DOC),
    entry(c"topos_rs.dialog", rpc_dialog, &DIALOG_DOC),
    entry(c"topos_rs.records", rpc_records, &RECORDS_DOC),
    entry(c"topos_rs.rates_reload", rpc_rates_reload, &RELOAD_DOC),
    entry(c"topos_rs.keys_reload", rpc_keys_reload, &KEYS_RELOAD_DOC),
    rpc_export_t {
        name: std::ptr::null(),
        function: None,
        doc_str: std::ptr::null_mut(),
        flags: 0,
    },
];
