//! What Kamailio sees of the module: `module_version`, `module_flags`,
//! `exports` (functions, parameters, init hooks). Every entry point here is a
//! thin `extern "C"` shell around a plain Rust function, run under the guard.

use super::bindings::{
    cmd_export_t, module_exports, param_export_t, register_script_cb, script_cb_flag_BRANCH_CB,
    script_cb_flag_FAILURE_CB, script_cb_flag_REQUEST_CB, sip_msg, topos_shim_runtime_dir,
    BRANCH_ROUTE, CORE_ONREPLY_ROUTE, FAILURE_ROUTE, LOCAL_ROUTE, PARAM_STRING, POST_SCRIPT_CB,
    REQUEST_ROUTE, TM_ONREPLY_ROUTE,
};
use super::bindings::{
    pv_export_t, register_timer, server_id, topos_shim_fixup_free_str_pv,
    topos_shim_fixup_free_str_str, topos_shim_fixup_str_pv, topos_shim_fixup_str_str,
    topos_shim_pvs, PARAM_INT, PROC_INIT, PROC_MAIN, PROC_POSTCHILDINIT,
};
use super::guard::{guard, guard_void, install_panic_hook, script_result, Ret};
use super::msg::{ScriptParam, SipMsg};
use super::{logger, tm, via_swap};
use crate::config::{ModuleConfig, ParamError, Storage};
use crate::error::Result;
use crate::{billing_functions, diagnostics, state, topos};
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

type ScriptFn2 = fn(&mut SipMsg, ScriptParam, ScriptParam) -> Result<bool>;

/// Runs a script function on the message Kamailio passed in.
pub(crate) fn run_script<R: Into<Ret>>(
    name: &str,
    msg: *mut sip_msg,
    f: impl FnOnce(&mut SipMsg) -> Result<R>,
) -> c_int {
    guard(name, || {
        // SAFETY: Kamailio passes the message being routed, valid for the call.
        match unsafe { SipMsg::from_raw(msg) } {
            Some(mut m) => script_result(name, f(&mut m)),
            None => -1,
        }
    })
}

/// Runs a two-parameter script function (parameters already fixed up).
fn run_script2(
    name: &str,
    msg: *mut sip_msg,
    p1: *mut c_char,
    p2: *mut c_char,
    f: ScriptFn2,
) -> c_int {
    guard(name, || {
        // SAFETY: Kamailio passes the message being routed, valid for the call.
        match unsafe { SipMsg::from_raw(msg) } {
            Some(mut m) => script_result(name, f(&mut m, ScriptParam(p1), ScriptParam(p2))),
            None => -1,
        }
    })
}

unsafe extern "C" fn w_topos_store_set(
    msg: *mut sip_msg,
    p1: *mut c_char,
    p2: *mut c_char,
) -> c_int {
    run_script2("topos_store_set", msg, p1, p2, diagnostics::topos_store_set)
}

unsafe extern "C" fn w_topos_store_get(
    msg: *mut sip_msg,
    p1: *mut c_char,
    p2: *mut c_char,
) -> c_int {
    run_script2("topos_store_get", msg, p1, p2, diagnostics::topos_store_get)
}

unsafe extern "C" fn w_topos_request(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    run_script("topos_request", msg, topos::topos_request)
}

unsafe extern "C" fn w_topos_reply(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    run_script("topos_reply", msg, topos::topos_reply)
}

unsafe extern "C" fn w_billing_start(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    run_script("billing_start", msg, billing_functions::billing_start)
}

/// This node's server_id (core parameter), for CDRs.
pub(crate) fn server_node() -> i64 {
    // SAFETY: server_id is a core global, set from the config before fork.
    unsafe { server_id as i64 }
}

unsafe extern "C" fn w_billing_stop(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    let node = server_node();
    run_script("billing_stop", msg, |m| {
        billing_functions::billing_stop(m, node)
    })
}

/// `$billing(name)`: the index of a field name, or -1 (called from the shim
/// while the config is parsed).
///
/// # Safety
/// `name` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn topos_rs_billing_field_index(name: *const c_char, len: c_int) -> c_int {
    guard("$billing name", || {
        if name.is_null() || len <= 0 {
            return -1;
        }
        // SAFETY: the shim passes the parser's text and its length.
        let bytes = unsafe { std::slice::from_raw_parts(name as *const u8, len as usize) };
        billing_functions::BILLING_FIELDS
            .iter()
            .position(|f| f.as_bytes() == bytes)
            .map_or(-1, |i| i as c_int)
    })
}

/// `$billing(name)`: points `s`/`len` at the field's text, which stays
/// valid until the next bill in this process; -1 if there is none.
///
/// # Safety
/// `msg` is the message being routed; `s` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn topos_rs_billing_value(
    msg: *mut sip_msg,
    field: c_int,
    s: *mut *const c_char,
    len: *mut c_int,
) -> c_int {
    guard("$billing", || {
        // SAFETY: the message whose script reads the variable.
        let Some(m) = (unsafe { SipMsg::from_raw(msg) }) else {
            return -1;
        };
        if s.is_null() || len.is_null() || field < 0 {
            return -1;
        }
        billing_functions::with_billing_field(&m, field as usize, |text| {
            // SAFETY: out-pointers from the shim; the text lives in this
            // process's last bill, which outlives the variable's use.
            unsafe {
                *s = text.as_ptr().cast();
                *len = text.len() as c_int;
            }
        })
        .map_or(-1, |_| 0)
    })
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

const fn cmd2(
    name: &'static CStr,
    f: unsafe extern "C" fn(*mut sip_msg, *mut c_char, *mut c_char) -> c_int,
    fixup: unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int,
    free_fixup: unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int,
) -> cmd_export_t {
    cmd_export_t {
        name: name.as_ptr() as *mut c_char,
        function: Some(f),
        param_no: 2,
        fixup: Some(fixup),
        free_fixup: Some(free_fixup),
        flags: ANY_ROUTE,
    }
}

/// Every routing block (ANY_ROUTE in core/route.h).
const ANY_ROUTE: u32 = 0xFFFF_FFFF;

static mut CMDS: [cmd_export_t; 7] = [
    cmd(
        c"topos_request",
        w_topos_request,
        REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE | LOCAL_ROUTE,
    ),
    cmd(
        c"topos_reply",
        w_topos_reply,
        TM_ONREPLY_ROUTE | CORE_ONREPLY_ROUTE,
    ),
    cmd(
        c"billing_start",
        w_billing_start,
        TM_ONREPLY_ROUTE | CORE_ONREPLY_ROUTE,
    ),
    cmd(c"billing_stop", w_billing_stop, REQUEST_ROUTE | LOCAL_ROUTE),
    cmd2(
        c"topos_store_set",
        w_topos_store_set,
        topos_shim_fixup_str_str,
        topos_shim_fixup_free_str_str,
    ),
    cmd2(
        c"topos_store_get",
        w_topos_store_get,
        topos_shim_fixup_str_pv,
        topos_shim_fixup_free_str_pv,
    ),
    NULL_CMD,
];

/// Parameters as the config sets them (before mod_init, one process).
static CONFIG: Mutex<Option<ModuleConfig>> = Mutex::new(None);

/// Applies one parameter value to the configuration; errors are logged and
/// stop Kamailio's start-up (the parser reports the modparam line).
fn set_param(
    name: &str,
    apply: impl FnOnce(&mut ModuleConfig) -> std::result::Result<(), ParamError>,
) -> c_int {
    // Parameters are set while the config is parsed, before mod_init.
    logger::init();
    guard(name, || {
        let mut cfg = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
        match apply(cfg.get_or_insert_with(ModuleConfig::default)) {
            Ok(()) => 0,
            Err(e) => {
                log::error!("{e}");
                -1
            }
        }
    })
}

unsafe extern "C" fn param_storage(_kind: c_uint, val: *mut c_void) -> c_int {
    // SAFETY: Kamailio passes the parameter's string.
    let text = unsafe { param_text(val) };
    set_param("modparam storage", |c| {
        c.storage = Some(Storage::parse(&text)?);
        Ok(())
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

macro_rules! int_param {
    ($fn_name:ident, $label:literal, $setter:ident) => {
        unsafe extern "C" fn $fn_name(_kind: c_uint, val: *mut c_void) -> c_int {
            // An integer parameter arrives as the pointer value itself.
            let v = val as isize as i64;
            set_param($label, |c| c.$setter(v))
        }
    };
}

macro_rules! string_param {
    ($fn_name:ident, $label:literal, $setter:ident) => {
        unsafe extern "C" fn $fn_name(_kind: c_uint, val: *mut c_void) -> c_int {
            // SAFETY: Kamailio passes the parameter's string.
            let text = unsafe { param_text(val) };
            set_param($label, |c| c.$setter(&text))
        }
    };
}

string_param!(
    param_billing_rate,
    "modparam billing_rate",
    set_billing_rate
);
string_param!(
    param_billing_currency,
    "modparam billing_currency",
    set_billing_currency
);
string_param!(
    param_billing_increment,
    "modparam billing_increment",
    set_billing_increment
);
string_param!(
    param_billing_connect_fee,
    "modparam billing_connect_fee",
    set_billing_connect_fee
);
string_param!(
    param_billing_rates_file,
    "modparam billing_rates_file",
    set_billing_rates_file
);
string_param!(param_billing_cdr, "modparam billing_cdr", set_billing_cdr);
string_param!(
    param_contact_host,
    "modparam contact_host",
    set_contact_host
);

int_param!(
    param_lmdb_map_size,
    "modparam lmdb_map_size",
    set_lmdb_map_size
);
int_param!(
    param_redis_timeout,
    "modparam redis_timeout",
    set_redis_timeout
);
int_param!(param_mask_callid, "modparam mask_callid", set_mask_callid);
int_param!(param_bind_source, "modparam bind_source", set_bind_source);
int_param!(
    param_route_to_source,
    "modparam route_to_source",
    set_route_to_source
);

int_param!(
    param_dialog_expire,
    "modparam dialog_expire",
    set_dialog_expire
);

int_param!(
    param_billing_decimals,
    "modparam billing_decimals",
    set_billing_decimals
);

const fn param(
    name: &'static CStr,
    kind: c_uint,
    f: unsafe extern "C" fn(c_uint, *mut c_void) -> c_int,
) -> param_export_t {
    param_export_t {
        name: name.as_ptr() as *mut c_char,
        type_: kind | PARAM_USE_FUNC,
        param_pointer: f as *mut c_void,
    }
}

static mut PARAMS: [param_export_t; 16] = [
    param(c"storage", PARAM_STRING, param_storage),
    param(c"lmdb_map_size", PARAM_INT, param_lmdb_map_size),
    param(c"redis_timeout", PARAM_INT, param_redis_timeout),
    param(c"billing_rate", PARAM_STRING, param_billing_rate),
    param(c"billing_currency", PARAM_STRING, param_billing_currency),
    param(c"billing_decimals", PARAM_INT, param_billing_decimals),
    param(c"billing_increment", PARAM_STRING, param_billing_increment),
    param(
        c"billing_connect_fee",
        PARAM_STRING,
        param_billing_connect_fee,
    ),
    param(
        c"billing_rates_file",
        PARAM_STRING,
        param_billing_rates_file,
    ),
    param(c"billing_cdr", PARAM_STRING, param_billing_cdr),
    param(c"mask_callid", PARAM_INT, param_mask_callid),
    param(c"bind_source", PARAM_INT, param_bind_source),
    param(c"route_to_source", PARAM_INT, param_route_to_source),
    param(c"contact_host", PARAM_STRING, param_contact_host),
    param(c"dialog_expire", PARAM_INT, param_dialog_expire),
    param_export_t {
        name: std::ptr::null_mut(),
        type_: 0,
        param_pointer: std::ptr::null_mut(),
    },
];

/// How often the timer process sweeps expired records (seconds).
const SWEEP_INTERVAL_S: c_uint = 10;

unsafe extern "C" fn sweep_timer(_ticks: c_uint, _param: *mut c_void) {
    guard_void("storage sweep", state::sweep);
}

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

/// pthread_atfork child handler: store handles opened before the fork
/// are reopened by the child on first use.
extern "C" fn after_fork_in_child() {
    guard_void("fork handler", crate::state::note_fork);
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
    crate::hooks::connect();
    if super::dialog_module::bind()? {
        log::debug!("dialog module found: dialogs of hidden calls keep the callee's route set");
    }
    // Counters every process shares: shared memory, before the fork.
    // SAFETY: a zeroed block is a valid Stats (all atomics at 0); it is
    // never freed, so the reference is 'static.
    unsafe {
        let p = super::bindings::topos_shim_shm_malloc(std::mem::size_of::<crate::stats::Stats>())
            as *mut crate::stats::Stats;
        if p.is_null() {
            return Err(crate::error::Error::new(
                "out of shared memory for statistics",
            ));
        }
        std::ptr::write_bytes(p, 0, 1);
        crate::stats::install(&*p);
    }
    // SAFETY: registers a handler that only bumps an atomic counter in the
    // child of each fork (no allocation, no lock).
    if unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) } != 0 {
        return Err(crate::error::Error::new("cannot register the fork handler"));
    }
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
    let mut cfg = CONFIG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    if cfg.storage.is_none() {
        // SAFETY: the core's runtime_dir string, set before mod_init.
        let dir = unsafe { CStr::from_ptr(topos_shim_runtime_dir()) }.to_string_lossy();
        cfg.storage = Some(Storage::default_under(&dir));
    }
    cfg.finalize()?;
    state::check_storage(&cfg)?;
    let cfg = state::configure(cfg)?;
    if matches!(cfg.storage, Some(Storage::Lmdb { .. })) {
        // SAFETY: registers a 'static callback with the core's timer.
        if unsafe { register_timer(Some(sweep_timer), std::ptr::null_mut(), SWEEP_INTERVAL_S) } < 0
        {
            return Err(crate::error::Error::new(
                "cannot register the storage sweep timer",
            ));
        }
    }
    log::info!("initialized; storage: {}", describe(cfg));
    Ok(())
}

/// The storage as the log shows it (no password).
fn describe(cfg: &ModuleConfig) -> String {
    match &cfg.storage {
        Some(Storage::Lmdb { dir }) => {
            format!("lmdb:{} (map {} MiB)", dir.display(), cfg.lmdb_map_size_mib)
        }
        Some(Storage::Redis { host, port, db, .. }) => format!(
            "redis://{host}:{port}/{db} (timeout {} ms)",
            cfg.redis_timeout.as_millis()
        ),
        None => "none".to_string(),
    }
}

unsafe extern "C" fn child_init(rank: c_int) -> c_int {
    guard("child_init", || {
        // The main process (before and after forking) keeps no store:
        // an LMDB environment must not cross a fork.
        if rank == PROC_INIT || rank == PROC_POSTCHILDINIT || rank == PROC_MAIN as c_int {
            return 0;
        }
        match state::open_for_this_process() {
            Ok(()) => 0,
            Err(e) => {
                log::error!("opening the storage: {e}");
                -1
            }
        }
    })
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
    rpc_methods: &raw mut super::rpc::RPC_METHODS as *mut super::bindings::rpc_export_t,
    pv_items: &raw mut topos_shim_pvs as *mut pv_export_t,
    response_f: None,
    init_mod_f: Some(mod_init),
    init_child_f: Some(child_init),
    destroy_mod_f: Some(destroy),
};

/// Called by Kamailio right after loading the module: registers the KEMI
/// functions.
///
/// # Safety
/// Called by Kamailio with its own arguments, which are not used.
#[no_mangle]
pub unsafe extern "C" fn mod_register(
    _path: *mut c_char,
    _dlflags: *mut c_int,
    _p1: *mut c_void,
    _p2: *mut c_void,
) -> c_int {
    logger::init();
    guard("mod_register", super::kemi::register)
}
