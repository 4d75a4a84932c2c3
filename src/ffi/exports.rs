//! What Kamailio sees of the module: `module_version`, `module_flags`,
//! `exports` (functions, parameters, init hooks). Every entry point here is a
//! thin `extern "C"` shell around a plain Rust function, run under the guard.

use super::bindings::{
    cmd_export_t, module_exports, param_export_t, pv_export_t, register_script_cb, register_timer,
    script_cb_flag_BRANCH_CB, script_cb_flag_FAILURE_CB, script_cb_flag_REQUEST_CB, sip_msg,
    sr_kemi_t, topos_shim_pvs, topos_shim_runtime_dir, POST_SCRIPT_CB, PROC_INIT, PROC_MAIN,
    PROC_POSTCHILDINIT,
};
use super::guard::{guard, guard_void, install_panic_hook};
use super::module_params::{take_config, PARAM_EXPORTS};
use super::msg::SipMsg;
use super::script_functions::{CFG_FUNCTIONS, KEMI_FUNCTIONS};
use super::script_table::register_kemi;
use super::{logger, tm, via_swap};
use crate::config::{ModuleConfig, Storage, TokenMode};
use crate::error::Result;
use crate::{billing_functions, billing_journal, state};
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_void};

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

/// How often the timer process sweeps expired records (seconds).
const SWEEP_INTERVAL_S: c_uint = 10;

unsafe extern "C" fn sweep_timer(_ticks: c_uint, _param: *mut c_void) {
    guard_void("storage sweep", state::sweep);
}

/// How often the timer process writes journaled billing events to the
/// store (seconds; a tick does nothing while none wait).
const JOURNAL_REPLAY_INTERVAL_S: c_uint = 1;

unsafe extern "C" fn journal_timer(_ticks: c_uint, _param: *mut c_void) {
    guard_void("billing journal", billing_journal::replay_pending);
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
    crate::hooks::connect()?;
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
            return Err(crate::error::Error::OutOfMemory(
                "out of shared memory for statistics",
            ));
        }
        std::ptr::write_bytes(p, 0, 1);
        crate::stats::install(&*p);
    }
    // SAFETY: registers a handler that only bumps an atomic counter in the
    // child of each fork (no allocation, no lock).
    if unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) } != 0 {
        return Err(crate::error::Error::Kamailio(
            "cannot register the fork handler",
        ));
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
        return Err(crate::error::Error::Kamailio(
            "cannot register the post-script callback",
        ));
    }
    let mut cfg = take_config();
    if cfg.storage.is_none() {
        // SAFETY: the core's runtime_dir string, set before mod_init.
        let dir = unsafe { CStr::from_ptr(topos_shim_runtime_dir()) }.to_string_lossy();
        cfg.storage = Some(Storage::default_under(&dir));
    }
    cfg.finalize()?;
    super::sockets::install_trusted(&cfg.trusted_sockets)?;
    state::check_storage(&cfg)?;
    let cfg = state::configure(cfg)?;
    if cfg.token_mode == TokenMode::Sealed {
        // SAFETY: the core's runtime_dir string, set before mod_init.
        let dir = unsafe { CStr::from_ptr(topos_shim_runtime_dir()) }.to_string_lossy();
        // The keys every process reads: shared memory, before the fork.
        // SAFETY: a zeroed block is a valid SharedKeys (all atomics at 0);
        // it is never freed, so the reference is 'static.
        let shared = unsafe {
            let p = super::bindings::topos_shim_shm_malloc(std::mem::size_of::<
                crate::token_keys::SharedKeys,
            >()) as *mut crate::token_keys::SharedKeys;
            if p.is_null() {
                return Err(crate::error::Error::OutOfMemory(
                    "out of shared memory for the token keys",
                ));
            }
            std::ptr::write_bytes(p, 0, 1);
            &*p
        };
        crate::token_keys::load_at_start(
            cfg.token_key_file.as_deref(),
            std::path::Path::new(dir.as_ref()),
            shared,
        )?;
    }
    // Kamailio counters read the shared block; before the fork.
    super::counters::register(cfg.storage.as_ref(), cfg.token_mode)?;
    if matches!(cfg.storage, Some(Storage::Lmdb { .. })) {
        // SAFETY: registers a 'static callback with the core's timer.
        if unsafe { register_timer(Some(sweep_timer), std::ptr::null_mut(), SWEEP_INTERVAL_S) } < 0
        {
            return Err(crate::error::Error::Kamailio(
                "cannot register the storage sweep timer",
            ));
        }
    }
    if matches!(cfg.storage, Some(Storage::Redis { .. })) {
        // Billing events Redis cannot take while it is unavailable wait in
        // a journal of this node (runtime directory) and are written by
        // the timer once it is back.
        // SAFETY: the core's runtime_dir string, set before mod_init.
        let dir = unsafe { CStr::from_ptr(topos_shim_runtime_dir()) }.to_string_lossy();
        let journal =
            billing_journal::configure(std::path::Path::new(dir.as_ref()), cfg.lmdb_map_size_mib)?;
        // SAFETY: registers a 'static callback with the core's timer.
        if unsafe {
            register_timer(
                Some(journal_timer),
                std::ptr::null_mut(),
                JOURNAL_REPLAY_INTERVAL_S,
            )
        } < 0
        {
            return Err(crate::error::Error::Kamailio(
                "cannot register the billing journal timer",
            ));
        }
        log::debug!("billing journal: {}", journal.display());
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
        Some(Storage::Redis { redis, .. }) => format!(
            "{} (timeout {} ms)",
            redis.describe(),
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
        if let Err(e) = state::open_for_this_process() {
            log::error!("opening the storage: {e}");
            return -1;
        }
        if billing_journal::enabled() {
            if let Err(e) = billing_journal::open_for_this_process() {
                log::error!("opening the billing journal: {e}");
                return -1;
            }
        }
        0
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
    cmds: &raw mut CFG_FUNCTIONS as *mut cmd_export_t,
    params: &raw mut PARAM_EXPORTS as *mut param_export_t,
    rpc_methods: &raw mut super::rpc::RPC_METHODS as *mut super::bindings::rpc_export_t,
    pv_items: &raw mut topos_shim_pvs as *mut pv_export_t,
    response_f: None,
    init_mod_f: Some(mod_init),
    init_child_f: Some(child_init),
    destroy_mod_f: Some(destroy),
};

/// Called by Kamailio right after loading the module: registers the KEMI
/// functions (declared in script_functions.rs).
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
    // SAFETY: the KEMI table is 'static and ends with its empty entry.
    guard("mod_register", || unsafe {
        register_kemi(&raw mut KEMI_FUNCTIONS as *mut sr_kemi_t)
    })
}
