//! A script function's parameters as its handler sees them, whichever way
//! the script called it: from the native cfg (parameters fixed up by
//! Kamailio when it parsed the config) or through KEMI (plain strings). The
//! pointers stay inside; handlers get values and set variables through the
//! safe methods.

use super::bindings::{str_, topos_shim_set_pv_by_name};
use super::msg::{ScriptParam, SipMsg};
use crate::error::{Error, Result};
use std::os::raw::{c_char, c_int};

/// The parameters of one call of a script function, valid for that call.
pub struct ScriptArgs(Source);

enum Source {
    /// A function without parameters.
    None,
    /// The native cfg: each parameter after its fixup (see
    /// `script_table::Param`); unused ones null.
    FixedUp([ScriptParam; 3]),
    /// KEMI: the strings the script passed (a variable as its name,
    /// `"$var(x)"`); unused ones null.
    Kemi([*mut str_; 3]),
}

impl ScriptArgs {
    /// For a function that takes no parameters.
    pub(in crate::ffi) fn none() -> ScriptArgs {
        ScriptArgs(Source::None)
    }

    /// # Safety
    /// `p1` and `p2` are the parameters Kamailio passes to a cfg function,
    /// fixed up by the fixups `script_table` chose for the function's
    /// parameter kinds, valid for the call.
    pub(in crate::ffi) unsafe fn fixed_up(
        p1: *mut c_char,
        p2: *mut c_char,
        p3: *mut c_char,
    ) -> ScriptArgs {
        ScriptArgs(Source::FixedUp([
            ScriptParam(p1),
            ScriptParam(p2),
            ScriptParam(p3),
        ]))
    }

    /// # Safety
    /// `p1` and `p2` are null or the `str` arguments KEMI passes, valid for
    /// the call.
    pub(in crate::ffi) unsafe fn kemi(p1: *mut str_, p2: *mut str_, p3: *mut str_) -> ScriptArgs {
        ScriptArgs(Source::Kemi([p1, p2, p3]))
    }

    /// The text of string parameter `n` (0-based) for this message, its
    /// pseudo-variables expanded.
    pub fn text(&self, msg: &mut SipMsg, n: usize) -> Result<Vec<u8>> {
        match &self.0 {
            Source::None => Err(missing()),
            Source::FixedUp(p) => {
                let p = *p.get(n).ok_or_else(missing)?;
                if p.0.is_null() {
                    return Err(missing());
                }
                msg.param_str(p)
            }
            Source::Kemi(p) => kemi_text(*p.get(n).ok_or_else(missing)?),
        }
    }

    /// Sets the variable that parameter `n` (0-based) names to `value`.
    pub fn set_variable(&self, msg: &mut SipMsg, n: usize, value: &[u8]) -> Result<()> {
        let rc = match &self.0 {
            Source::None => return Err(missing()),
            Source::FixedUp(p) => return msg.set_pv_str(*p.get(n).ok_or_else(missing)?, value),
            // SAFETY: the message and the variable name are valid for the
            // call (`kemi`'s contract); Kamailio copies the value.
            Source::Kemi(p) => unsafe {
                topos_shim_set_pv_by_name(
                    msg.as_ptr(),
                    *p.get(n).ok_or_else(missing)?,
                    value.as_ptr() as *const c_char,
                    value.len() as c_int,
                )
            },
        };
        if rc < 0 {
            return Err(Error::Kamailio("cannot set the result variable"));
        }
        Ok(())
    }
}

fn missing() -> Error {
    Error::Misuse("missing parameter")
}

/// A KEMI string argument's bytes (empty for an empty string).
fn kemi_text(s: *mut str_) -> Result<Vec<u8>> {
    // SAFETY: null or a valid str for the call (`ScriptArgs::kemi`).
    let s = unsafe { s.as_ref() }.ok_or_else(missing)?;
    if s.s.is_null() || s.len <= 0 {
        return Ok(Vec::new());
    }
    // SAFETY: as above: `len` bytes at `s`.
    Ok(unsafe { std::slice::from_raw_parts(s.s as *const u8, s.len as usize) }.to_vec())
}
