//! What Kamailio sees of the module: `module_version`, `module_flags`,
//! `exports` (functions, parameters, init hooks). Every entry point here is a
//! thin `extern "C"` shell around a plain Rust function, run under the guard.

use super::bindings::{
    cmd_export_t, module_exports, param_export_t, register_script_cb, script_cb_flag_BRANCH_CB,
    script_cb_flag_FAILURE_CB, script_cb_flag_REQUEST_CB, sip_msg, topos_shim_runtime_dir,
    BRANCH_ROUTE, CORE_ONREPLY_ROUTE, FAILURE_ROUTE, PARAM_STRING, POST_SCRIPT_CB, REQUEST_ROUTE,
    TM_ONREPLY_ROUTE,
};
use super::guard::{guard, guard_void, install_panic_hook, script_result};
use super::msg::SipMsg;
use super::{logger, tm, via_swap};
use crate::config::Storage;
use crate::error::Result;
use crate::topos;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::Mutex;

/// A C `char *` that may live in a static.
#[repr(transparent)]
pub struct CStrPtr(*const c_char);
// SAFETY: points to immutable 'static bytes.
unsafe impl Sync for CStrPtr {}

/// Checked by Kamailio against its own version: `kamailio -v` at build time.
#[no_mangle]
pub static module_version: CStrPtr =
    CStrPtr(concat!(env!("TOPOS_MODULE_VERSION"), "\0").as_ptr().cast());

/// Checked by Kamailio against its compile flags: `kamailio -v` at build time.
#[no_mangle]
pub static module_flags: CStrPtr =
    CStrPtr(concat!(env!("TOPOS_MODULE_FLAGS"), "\0").as_ptr().cast());

/// Bit 31: the parameter is set through a function (PARAM_USE_FUNC).
const PARAM_USE_FUNC: c_uint = 1 << 31;

type ScriptFn = fn(&mut SipMsg) -> Result<bool>;

/// Runs a script function on the message Kamailio passed in.
fn run_script(name: &str, msg: *mut sip_msg, f: ScriptFn) -> c_int {
    guard(name, || {
        // SAFETY: Kamailio passes the message being routed, valid for the call.
        match unsafe { SipMsg::from_raw(msg) } {
            Some(mut m) => script_result(name, f(&mut m)),
            None => -1,
        }
    })
}

unsafe extern "C" fn w_topos_request(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    run_script("topos_request", msg, topos::topos_request)
}

unsafe extern "C" fn w_topos_reply(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    run_script("topos_reply", msg, topos::topos_reply)
}

const fn cmd(
    name: &'static CStr,
    f: unsafe extern "C" fn(*mut sip_msg, *mut c_char, *mut c_char) -> c_int,
    flags: u32,
) -> cmd_export_t {
    cmd_export_t {
        name: name.as_ptr() as *mut c_char,
        function: Some(f),
        param_no: 0,
        fixup: None,
        free_fixup: None,
        flags,
    }
}

const NULL_CMD: cmd_export_t = cmd_export_t {
    name: std::ptr::null_mut(),
    function: None,
    param_no: 0,
    fixup: None,
    free_fixup: None,
    flags: 0,
};

static mut CMDS: [cmd_export_t; 3] = [
    cmd(
        c"topos_request",
        w_topos_request,
        REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE,
    ),
    cmd(
        c"topos_reply",
        w_topos_reply,
        TM_ONREPLY_ROUTE | CORE_ONREPLY_ROUTE,
    ),
    NULL_CMD,
];

/// The parsed `storage` parameter; unset means the default.
static STORAGE: Mutex<Option<Storage>> = Mutex::new(None);

unsafe extern "C" fn set_storage(_kind: c_uint, val: *mut c_void) -> c_int {
    // Parameters are set while the config is parsed, before mod_init.
    logger::init();
    guard("modparam storage", || {
        if val.is_null() {
            log::error!("modparam \"storage\": no value");
            return -1;
        }
        // SAFETY: Kamailio passes the parameter's NUL-terminated string.
        let text = unsafe { CStr::from_ptr(val as *const c_char) }.to_string_lossy();
        match Storage::parse(&text) {
            Ok(s) => {
                *STORAGE.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
                0
            }
            Err(e) => {
                log::error!("{e}");
                -1
            }
        }
    })
}

static mut PARAMS: [param_export_t; 2] = [
    param_export_t {
        name: c"storage".as_ptr() as *mut c_char,
        type_: PARAM_STRING | PARAM_USE_FUNC,
        param_pointer: set_storage as *mut c_void,
    },
    param_export_t {
        name: std::ptr::null_mut(),
        type_: 0,
        param_pointer: std::ptr::null_mut(),
    },
];

/// After each request, failure or branch route: undo a `via1` swap that
/// tm did not get to undo (for example, an ACK relayed statelessly).
unsafe extern "C" fn post_script(msg: *mut sip_msg, _flags: c_uint, _p: *mut c_void) -> c_int {
    guard_void("post-script callback", || {
        // SAFETY: the message the script just ran on, still alive here.
        if let Some(mut m) = unsafe { SipMsg::from_raw(msg) } {
            via_swap::restore(&mut m);
        }
    });
    1
}

unsafe extern "C" fn mod_init() -> c_int {
    logger::init();
    install_panic_hook();
    guard("mod_init", || match init() {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            -1
        }
    })
}

fn init() -> Result<()> {
    tm::load()?;
    // SAFETY: registers a 'static callback with the core.
    let rc = unsafe {
        register_script_cb(
            Some(post_script),
            POST_SCRIPT_CB
                | script_cb_flag_REQUEST_CB
                | script_cb_flag_FAILURE_CB
                | script_cb_flag_BRANCH_CB,
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        return Err(crate::error::Error::new(
            "cannot register the post-script callback",
        ));
    }
    let mut storage = STORAGE.lock().unwrap_or_else(|e| e.into_inner());
    if storage.is_none() {
        // SAFETY: the core's runtime_dir string, set before mod_init.
        let dir = unsafe { CStr::from_ptr(topos_shim_runtime_dir()) }.to_string_lossy();
        *storage = Some(Storage::default_under(&dir));
    }
    log::info!("initialized; storage: {:?}", storage.as_ref());
    Ok(())
}

unsafe extern "C" fn child_init(_rank: c_int) -> c_int {
    guard("child_init", || 0)
}

unsafe extern "C" fn destroy() {
    guard_void("destroy", || {});
}

/// The module's export table, read by Kamailio after dlopen.
#[no_mangle]
pub static mut exports: module_exports = module_exports {
    name: c"topos_rs".as_ptr() as *mut c_char,
    dlflags: 0,
    cmds: &raw mut CMDS as *mut cmd_export_t,
    params: &raw mut PARAMS as *mut param_export_t,
    rpc_methods: std::ptr::null_mut(),
    pv_items: std::ptr::null_mut(),
    response_f: None,
    init_mod_f: Some(mod_init),
    init_child_f: Some(child_init),
    destroy_mod_f: Some(destroy),
};
