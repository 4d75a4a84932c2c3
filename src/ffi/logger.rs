//! Routes `log` records to Kamailio's logger, so topos_rs lines obey
//! Kamailio's global and per-module debug levels and go where the operator
//! sends Kamailio's log (syslog or stderr).

use super::bindings::{topos_shim_log, topos_shim_log_enabled, L_DBG, L_ERR, L_INFO, L_WARN};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::os::raw::c_int;

/// Kamailio's log level for a `log` level (Kamailio has no trace level).
fn kamailio_level(level: Level) -> c_int {
    match level {
        Level::Error => L_ERR,
        Level::Warn => L_WARN,
        Level::Info => L_INFO,
        Level::Debug | Level::Trace => L_DBG,
    }
}

struct KamailioLogger;

impl Log for KamailioLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // SAFETY: reads Kamailio's debug level; valid in every process.
        unsafe { topos_shim_log_enabled(kamailio_level(metadata.level())) != 0 }
    }

    fn log(&self, record: &Record) {
        // Checked before formatting: a disabled level costs no allocation.
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        let len = text.len().min(i32::MAX as usize) as i32;
        // SAFETY: the shim prints `len` bytes of `text` behind a constant
        // "%.*s" format; `text` outlives the call.
        unsafe { topos_shim_log(kamailio_level(record.level()), text.as_ptr().cast(), len) };
    }

    fn flush(&self) {}
}

static LOGGER: KamailioLogger = KamailioLogger;

/// Installs the logger (once per process image; later calls are no-ops).
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Trace);
    }
}
