//! Kamailio's parameter table (`param_export_t`), built from the
//! parameters declared in `config::PARAMS`. Each `modparam` line is applied
//! as the config is parsed, so a bad value stops start-up at its line.

use super::bindings::{
    param_export_t, topos_param_flags_TOPOS_PARAM_USE_FUNC, PARAM_INT, PARAM_STRING,
};
use super::guard::guard;
use super::logger;
use crate::config::{ModuleConfig, ParamSetter, ParamSpec, PARAMS};
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::Mutex;

/// Parameters as the config sets them (before mod_init, one process).
static CONFIG: Mutex<Option<ModuleConfig>> = Mutex::new(None);

/// The configuration the `modparam` lines made (the defaults if none).
pub fn take_config() -> ModuleConfig {
    CONFIG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}

/// Applies one parameter value to the configuration; errors are logged and
/// stop Kamailio's start-up (the parser reports the modparam line).
fn apply(spec: &ParamSpec, value: ParamValue) -> c_int {
    let mut cfg = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = cfg.get_or_insert_with(ModuleConfig::default);
    let applied = match (spec.setter, value) {
        (ParamSetter::Int(set), ParamValue::Int(v)) => set(cfg, v),
        (ParamSetter::Text(set), ParamValue::Text(v)) => set(cfg, &v),
        // The table gives each parameter the type its setter takes.
        _ => unreachable!("parameter value of the wrong type"),
    };
    match applied {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            -1
        }
    }
}

enum ParamValue {
    Int(i64),
    Text(String),
}

/// Kamailio's callback for parameter `PARAMS[I]` (the callback is not told
/// which parameter it sets, so each has its own).
unsafe extern "C" fn set_param<const I: usize>(_kind: c_uint, val: *mut c_void) -> c_int {
    // Parameters are set while the config is parsed, before mod_init.
    logger::init();
    let spec = &PARAMS[I];
    guard(&format!("modparam {}", spec.name.to_string_lossy()), || {
        let value = match spec.setter {
            // An integer parameter arrives as the pointer value itself.
            ParamSetter::Int(_) => ParamValue::Int(val as isize as i64),
            // SAFETY: for a PARAM_STRING parameter Kamailio passes its
            // NUL-terminated string.
            ParamSetter::Text(_) => ParamValue::Text(unsafe { param_text(val) }),
        };
        apply(spec, value)
    })
}

/// A string parameter's text.
///
/// # Safety
/// `val` is null or the NUL-terminated string Kamailio passes.
unsafe fn param_text(val: *mut c_void) -> String {
    if val.is_null() {
        return String::new();
    }
    // SAFETY: per the function's contract.
    unsafe { CStr::from_ptr(val as *const c_char) }
        .to_string_lossy()
        .into_owned()
}

const fn param_export<const I: usize>() -> param_export_t {
    let spec = &PARAMS[I];
    let kind = match spec.setter {
        ParamSetter::Int(_) => PARAM_INT,
        ParamSetter::Text(_) => PARAM_STRING,
    };
    param_export_t {
        name: spec.name.as_ptr() as *mut c_char,
        type_: kind | topos_param_flags_TOPOS_PARAM_USE_FUNC,
        param_pointer: set_param::<I> as *mut c_void,
    }
}

const PARAM_END: param_export_t = param_export_t {
    name: std::ptr::null_mut(),
    type_: 0,
    param_pointer: std::ptr::null_mut(),
};

/// One entry per index of `PARAMS` (a missing or extra index does not
/// compile: the table's length is `PARAMS.len() + 1`).
macro_rules! param_exports {
    ($($i:literal)*) => {
        [$(param_export::<$i>(),)* PARAM_END]
    };
}

/// The module's parameters, ended by an empty entry.
pub(in crate::ffi) static mut PARAM_EXPORTS: [param_export_t; PARAMS.len() + 1] =
    param_exports!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22);
