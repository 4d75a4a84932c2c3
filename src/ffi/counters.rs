//! The module's numbers as Kamailio counters: group `topos_rs`, one
//! counter per entry of `stats::COUNTERS` that this node's storage shows,
//! so `kamcmd cnt.get_vars topos_rs`, `stats.get_statistics topos_rs:` and
//! xhttp_prom (`kamailio_topos_rs_<name>`) list what `topos_rs.stats` does.
//!
//! Each is a callback counter reading the shared `Stats` block (atomics
//! in shared memory) rather than one of Kamailio's per-process counters:
//! the values are the RPC's by construction, whatever process reads them,
//! the hot paths keep their one atomic add, and derived values
//! (`dialogs_active`) need no second bookkeeping. A reset cannot touch
//! that block, so the counters are registered `CNT_F_NO_RESET`.

use super::bindings::{counter_handle_t, counter_register, counter_val_t, CNT_F_NO_RESET};
use super::guard::guard_or;
use crate::config::{Storage, TokenMode};
use crate::error::{Error, Result};
use crate::stats::{self, COUNTERS};
use std::ffi::{c_void, CString};

/// The counters' group: the module's name.
const GROUP: &std::ffi::CStr = c"topos_rs";

/// Kamailio calls this to read a counter: `param` is the counter's index
/// in `COUNTERS`.
unsafe extern "C" fn read_counter(_h: counter_handle_t, param: *mut c_void) -> counter_val_t {
    guard_or("topos_rs counter", 0, || {
        let (Some(s), Some(c)) = (stats::get(), COUNTERS.get(param as usize)) else {
            return 0;
        };
        counter_val_t::try_from(c.value(s)).unwrap_or(counter_val_t::MAX)
    })
}

/// Registers the counters this storage shows; in mod_init, before the
/// fork (Kamailio refuses counters after it), once the shared block is
/// installed. The first counter Kamailio refuses stops the start.
pub fn register(storage: Option<&Storage>, tokens: TokenMode) -> Result<()> {
    for c in stats::shown(storage, tokens) {
        let index = COUNTERS
            .iter()
            .position(|d| std::ptr::eq(d, c))
            .expect("shown() yields entries of COUNTERS");
        // Names and docs are plain ASCII without NUL (unit-tested in stats).
        let name = CString::new(c.name).expect("no NUL in a counter name");
        let doc = CString::new(c.doc).expect("no NUL in a counter doc");
        let mut handle = counter_handle_t::default();
        // SAFETY: the core copies group, name and doc into its own memory;
        // the callback is a 'static function whose parameter is an index,
        // not a pointer; this runs in mod_init, before the fork.
        let rc = unsafe {
            counter_register(
                &mut handle,
                GROUP.as_ptr(),
                name.as_ptr(),
                CNT_F_NO_RESET as i32,
                Some(read_counter),
                index as *mut c_void,
                doc.as_ptr(),
                0,
            )
        };
        if rc < 0 {
            return Err(Error::CounterRefused {
                name: c.name,
                code: rc,
            });
        }
    }
    Ok(())
}
