//! How a script function declared in `script_functions.rs` becomes both a
//! native cfg function (`cmd_export_t`) and a KEMI function (`sr_kemi_t`),
//! and the one path every call takes: the panic guard, the message, the
//! handler, the return code.

use super::bindings::{
    cmd_export_t, sip_msg, sr_kemi_modules_add, sr_kemi_t, str_, topos_shim_fixup_free_str,
    topos_shim_fixup_free_str3, topos_shim_fixup_free_str_pv, topos_shim_fixup_free_str_str,
    topos_shim_fixup_str, topos_shim_fixup_str3, topos_shim_fixup_str_pv, topos_shim_fixup_str_str,
    SR_KEMIP_INT, SR_KEMIP_NONE, SR_KEMIP_STR,
};
use super::guard::guard;
use super::msg::SipMsg;
use super::script_args::ScriptArgs;
use crate::error::Result;
use crate::script_result::{self, ScriptResult};
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

/// What a parameter of a script function is.
pub enum Param {
    /// A string that may hold pseudo-variables (cfg fixup "spve").
    Text,
    /// A writable pseudo-variable the function sets (cfg fixup "pvar";
    /// KEMI passes its name as a string).
    Variable,
}

/// A script function's behaviour, the same for cfg and KEMI calls.
pub type Handler = fn(&mut SipMsg, &ScriptArgs) -> Result<ScriptResult>;

/// The function Kamailio calls for a native cfg function of up to two
/// parameters (its `cmd_function`).
pub type CfgEntry = unsafe extern "C" fn(*mut sip_msg, *mut c_char, *mut c_char) -> c_int;

/// The function Kamailio calls for a native cfg function of three
/// parameters (its `cmd_function3`: the table holds it as a `CfgEntry`,
/// and Kamailio casts it back by the parameter count).
pub type CfgEntry3 =
    unsafe extern "C" fn(*mut sip_msg, *mut c_char, *mut c_char, *mut c_char) -> c_int;

/// A three-parameter entry as the table holds it.
pub const fn entry3(f: CfgEntry3) -> CfgEntry {
    // SAFETY: only the type changes; Kamailio calls a function whose
    // `param_no` is 3 through `cmd_function3`, the type `f` has.
    unsafe { std::mem::transmute::<CfgEntry3, CfgEntry>(f) }
}

/// Runs one call of a script function on the message Kamailio passed in,
/// under the panic guard.
///
/// # Safety
/// `msg` is null or the message being routed, valid for the call.
pub unsafe fn run_script(
    name: &str,
    msg: *mut sip_msg,
    args: ScriptArgs,
    handler: Handler,
) -> c_int {
    guard(name, || {
        // SAFETY: per the function's contract.
        match unsafe { SipMsg::from_raw(msg) } {
            Some(mut m) => script_result::code(name, handler(&mut m, &args)),
            None => ScriptResult::False.code(),
        }
    })
}

/// A function's name as a C string (`name` ends in NUL).
pub const fn c_name(name: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(name.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("a script function name must end in exactly one NUL"),
    }
}

/// The cfg table entry: the parameter kinds choose the fixups, which turn
/// the config's text into what `ScriptArgs` reads when the config is parsed.
pub const fn cfg_export(
    name: &'static CStr,
    entry: CfgEntry,
    params: &[Param],
    routes: u32,
) -> cmd_export_t {
    type Fixup = unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int;
    let (fixup, free_fixup): (Option<Fixup>, Option<Fixup>) = match params {
        [] => (None, None),
        [Param::Text] => (Some(topos_shim_fixup_str), Some(topos_shim_fixup_free_str)),
        [Param::Text, Param::Text, Param::Text] => (
            Some(topos_shim_fixup_str3),
            Some(topos_shim_fixup_free_str3),
        ),
        [Param::Text, Param::Text] => (
            Some(topos_shim_fixup_str_str),
            Some(topos_shim_fixup_free_str_str),
        ),
        [Param::Text, Param::Variable] => (
            Some(topos_shim_fixup_str_pv),
            Some(topos_shim_fixup_free_str_pv),
        ),
        _ => panic!("no cfg fixup for these parameter kinds (see script_table::cfg_export)"),
    };
    cmd_export_t {
        name: name.as_ptr() as *mut c_char,
        function: Some(entry),
        param_no: params.len() as c_int,
        fixup,
        free_fixup,
        flags: routes,
    }
}

/// Ends the cfg table.
pub const CFG_END: cmd_export_t = cmd_export_t {
    name: std::ptr::null_mut(),
    function: None,
    param_no: 0,
    fixup: None,
    free_fixup: None,
    flags: 0,
};

/// KEMI engines use these as C strings too: they must be NUL-terminated.
const fn kemi_str(s: &'static CStr) -> str_ {
    str_ {
        s: s.as_ptr() as *mut c_char,
        len: s.count_bytes() as c_int,
    }
}

/// The KEMI table entry: `KSR.topos_rs.<name>(...)`, every parameter a
/// string, an integer result. `entry` takes the message and one `str *`
/// per parameter.
pub const fn kemi_export(name: &'static CStr, entry: *mut c_void, params: &[Param]) -> sr_kemi_t {
    let mut ptypes = [SR_KEMIP_NONE as c_int; 6];
    let mut i = 0;
    while i < params.len() {
        ptypes[i] = SR_KEMIP_STR as c_int;
        i += 1;
    }
    sr_kemi_t {
        mname: kemi_str(c"topos_rs"),
        fname: kemi_str(name),
        rtype: SR_KEMIP_INT as c_int,
        func: entry,
        ptypes,
    }
}

/// Ends the KEMI table.
pub const KEMI_END: sr_kemi_t = sr_kemi_t {
    mname: str_ {
        s: std::ptr::null_mut(),
        len: 0,
    },
    fname: str_ {
        s: std::ptr::null_mut(),
        len: 0,
    },
    rtype: 0,
    func: std::ptr::null_mut(),
    ptypes: [0; 6],
};

/// Registers a KEMI table (from mod_register).
///
/// # Safety
/// `table` is 'static and ends with `KEMI_END`.
pub unsafe fn register_kemi(table: *mut sr_kemi_t) -> c_int {
    // SAFETY: per the function's contract; the core keeps the pointer.
    unsafe { sr_kemi_modules_add(table) }
}

/// Declares the module's script functions, each once, and builds from the
/// list the cfg table `CFG_FUNCTIONS` and the KEMI table `KEMI_FUNCTIONS`:
///
/// ```text
/// /// doc
/// fn name(Param, ...) in ROUTES => handler;
/// ```
///
/// `name` is the function's name in both; the parameters are none, one
/// `Text`, two (`Text`/`Variable`, see `Param`) or three `Text`; `ROUTES` are the cfg routing blocks
/// it may be called from (KEMI does not restrict them); `handler` takes
/// `&mut SipMsg` (and `&ScriptArgs` when the function has parameters) and
/// returns a `Result` of anything `Into<ScriptResult>`.
macro_rules! script_functions {
    ($(
        $(#[doc = $doc:expr])*
        fn $name:ident($($param:ident),*) in $routes:expr => $handler:expr;
    )*) => {
        $(
            $(#[doc = $doc])*
            fn $name(msg: &mut SipMsg, args: &ScriptArgs) -> Result<ScriptResult> {
                script_functions!(@call $handler, msg, args, ($($param),*))
            }
        )*

        const COUNT: usize = [$(stringify!($name)),*].len();

        /// The native cfg functions, ended by an empty entry.
        pub(in crate::ffi) static mut CFG_FUNCTIONS: [cmd_export_t; COUNT + 1] = [
            $(cfg_export(
                c_name(concat!(stringify!($name), "\0")),
                script_functions!(@cfg_entry $name, ($($param),*)),
                &[$(Param::$param),*],
                $routes,
            ),)*
            CFG_END,
        ];

        /// The KEMI functions, ended by an empty entry.
        pub(in crate::ffi) static mut KEMI_FUNCTIONS: [sr_kemi_t; COUNT + 1] = [
            $(kemi_export(
                c_name(concat!(stringify!($name), "\0")),
                script_functions!(@kemi_entry $name, ($($param),*)),
                &[$(Param::$param),*],
            ),)*
            KEMI_END,
        ];
    };

    (@call $handler:expr, $msg:ident, $args:ident, ()) => {{
        let _ = $args;
        ($handler)($msg).map(Into::into)
    }};
    (@call $handler:expr, $msg:ident, $args:ident, ($($p:ident),+)) => {
        ($handler)($msg, $args).map(Into::into)
    };

    (@cfg_entry $name:ident, ()) => {{
        unsafe extern "C" fn entry(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
            // SAFETY: Kamailio passes the message being routed.
            unsafe { run_script(stringify!($name), msg, ScriptArgs::none(), $name) }
        }
        entry
    }};
    (@cfg_entry $name:ident, ($k1:ident)) => {
        script_functions!(@cfg_entry $name, ($k1, Text))
    };
    (@cfg_entry $name:ident, ($k1:ident, $k2:ident)) => {{
        unsafe extern "C" fn entry(msg: *mut sip_msg, p1: *mut c_char, p2: *mut c_char) -> c_int {
            // SAFETY: Kamailio passes the message being routed and the
            // parameters as fixed up by the fixups cfg_export chose for the
            // parameter kinds (a second one of a one-parameter function is
            // null and never read).
            unsafe {
                run_script(
                    stringify!($name),
                    msg,
                    ScriptArgs::fixed_up(p1, p2, std::ptr::null_mut()),
                    $name,
                )
            }
        }
        entry
    }};
    (@cfg_entry $name:ident, ($k1:ident, $k2:ident, $k3:ident)) => {{
        unsafe extern "C" fn entry(
            msg: *mut sip_msg,
            p1: *mut c_char,
            p2: *mut c_char,
            p3: *mut c_char,
        ) -> c_int {
            // SAFETY: as for two parameters; Kamailio calls a function of
            // three parameters with three.
            unsafe { run_script(stringify!($name), msg, ScriptArgs::fixed_up(p1, p2, p3), $name) }
        }
        entry3(entry)
    }};

    (@kemi_entry $name:ident, ()) => {{
        unsafe extern "C" fn entry(msg: *mut sip_msg) -> c_int {
            // SAFETY: KEMI passes the message being routed.
            unsafe { run_script(stringify!($name), msg, ScriptArgs::none(), $name) }
        }
        entry as *mut c_void
    }};
    (@kemi_entry $name:ident, ($k1:ident)) => {{
        unsafe extern "C" fn entry(msg: *mut sip_msg, p1: *mut str_) -> c_int {
            // SAFETY: KEMI passes the message being routed and the
            // script's string argument, valid for the call.
            unsafe {
                run_script(
                    stringify!($name),
                    msg,
                    ScriptArgs::kemi(p1, std::ptr::null_mut(), std::ptr::null_mut()),
                    $name,
                )
            }
        }
        entry as *mut c_void
    }};
    (@kemi_entry $name:ident, ($k1:ident, $k2:ident)) => {{
        unsafe extern "C" fn entry(msg: *mut sip_msg, p1: *mut str_, p2: *mut str_) -> c_int {
            // SAFETY: KEMI passes the message being routed and the
            // script's string arguments, valid for the call.
            unsafe {
                run_script(
                    stringify!($name),
                    msg,
                    ScriptArgs::kemi(p1, p2, std::ptr::null_mut()),
                    $name,
                )
            }
        }
        entry as *mut c_void
    }};
    (@kemi_entry $name:ident, ($k1:ident, $k2:ident, $k3:ident)) => {{
        unsafe extern "C" fn entry(
            msg: *mut sip_msg,
            p1: *mut str_,
            p2: *mut str_,
            p3: *mut str_,
        ) -> c_int {
            // SAFETY: as above, three arguments.
            unsafe { run_script(stringify!($name), msg, ScriptArgs::kemi(p1, p2, p3), $name) }
        }
        entry as *mut c_void
    }};
}
pub(in crate::ffi) use script_functions;
