//! Routes `log` records to Kamailio's logger, so topos_rs lines obey
//! Kamailio's global and per-module debug levels and go where the operator
//! sends Kamailio's log (syslog or stderr).

use super::bindings::{topos_shim_log, topos_shim_log_enabled};
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Kamailio's L_ERR .. L_DBG (core/dprint.h).
fn kamailio_level(level: Level) -> i32 {
    match level {
        Level::Error => -1,
        Level::Warn => 0,
        Level::Info => 2,
        Level::Debug | Level::Trace => 3,
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
