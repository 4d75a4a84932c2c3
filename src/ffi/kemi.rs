//! KEMI: every script function as `KSR.topos_rs.<name>()` for routing
//! scripts in Lua, Python, JavaScript... Registered from `mod_register`.

use super::bindings::{
    sip_msg, sr_kemi_modules_add, sr_kemi_t, str_, topos_shim_set_pv_by_name, SR_KEMIP_INT,
    SR_KEMIP_NONE, SR_KEMIP_STR,
};
use super::exports::{run_script, server_node};
use super::msg::SipMsg;
use crate::error::{Error, Result};
use crate::{billing_functions, diagnostics, topos};
use std::os::raw::{c_char, c_int, c_void};

fn text(s: *mut str_) -> Result<Vec<u8>> {
    // SAFETY: KEMI passes valid str arguments for the call.
    let s = unsafe { s.as_ref() }.ok_or_else(|| Error::new("missing parameter"))?;
    if s.s.is_null() || s.len <= 0 {
        return Ok(Vec::new());
    }
    // SAFETY: as above.
    Ok(unsafe { std::slice::from_raw_parts(s.s as *const u8, s.len as usize) }.to_vec())
}

unsafe extern "C" fn ki_topos_request(msg: *mut sip_msg) -> c_int {
    run_script("topos_request", msg, topos::topos_request)
}

unsafe extern "C" fn ki_topos_reply(msg: *mut sip_msg) -> c_int {
    run_script("topos_reply", msg, topos::topos_reply)
}

unsafe extern "C" fn ki_billing_start(msg: *mut sip_msg) -> c_int {
    run_script("billing_start", msg, billing_functions::billing_start)
}

unsafe extern "C" fn ki_billing_stop(msg: *mut sip_msg) -> c_int {
    let node = server_node();
    run_script("billing_stop", msg, |m| {
        billing_functions::billing_stop(m, node)
    })
}

unsafe extern "C" fn ki_topos_store_set(
    msg: *mut sip_msg,
    key: *mut str_,
    value: *mut str_,
) -> c_int {
    run_script("topos_store_set", msg, |_m| {
        diagnostics::store_set(&text(key)?, &text(value)?)
    })
}

/// `KSR.topos_rs.topos_store_get(key, "$var(name)")`: sets the variable.
unsafe extern "C" fn ki_topos_store_get(msg: *mut sip_msg, key: *mut str_, pv: *mut str_) -> c_int {
    run_script("topos_store_get", msg, |m: &mut SipMsg| {
        let Some(value) = diagnostics::store_get(&text(key)?) else {
            return Ok(false);
        };
        // SAFETY: the message and the variable name are valid for the call;
        // Kamailio copies the value.
        let rc = unsafe {
            topos_shim_set_pv_by_name(
                m.as_ptr(),
                pv,
                value.as_ptr() as *const c_char,
                value.len() as c_int,
            )
        };
        Ok(rc >= 0)
    })
}

/// KEMI engines use these as C strings too: they must be NUL-terminated.
const fn name(s: &'static std::ffi::CStr) -> str_ {
    str_ {
        s: s.as_ptr() as *mut c_char,
        len: s.count_bytes() as c_int,
    }
}

const fn kemi(fname: &'static std::ffi::CStr, func: *mut c_void, params: [u32; 2]) -> sr_kemi_t {
    sr_kemi_t {
        mname: name(c"topos_rs"),
        fname: name(fname),
        rtype: SR_KEMIP_INT as c_int,
        func,
        ptypes: [
            params[0] as c_int,
            params[1] as c_int,
            SR_KEMIP_NONE as c_int,
            SR_KEMIP_NONE as c_int,
            SR_KEMIP_NONE as c_int,
            SR_KEMIP_NONE as c_int,
        ],
    }
}

const NONE: [u32; 2] = [SR_KEMIP_NONE, SR_KEMIP_NONE];
const TWO_STR: [u32; 2] = [SR_KEMIP_STR, SR_KEMIP_STR];

static mut KEMI_EXPORTS: [sr_kemi_t; 7] = [
    kemi(c"topos_request", ki_topos_request as *mut c_void, NONE),
    kemi(c"topos_reply", ki_topos_reply as *mut c_void, NONE),
    kemi(c"billing_start", ki_billing_start as *mut c_void, NONE),
    kemi(c"billing_stop", ki_billing_stop as *mut c_void, NONE),
    kemi(
        c"topos_store_set",
        ki_topos_store_set as *mut c_void,
        TWO_STR,
    ),
    kemi(
        c"topos_store_get",
        ki_topos_store_get as *mut c_void,
        TWO_STR,
    ),
    sr_kemi_t {
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
    },
];

/// Registers the KEMI functions (from mod_register).
pub fn register() -> c_int {
    // SAFETY: the table is 'static and terminated by an empty entry.
    unsafe { sr_kemi_modules_add(&raw mut KEMI_EXPORTS as *mut sr_kemi_t) }
}
