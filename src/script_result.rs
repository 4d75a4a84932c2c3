//! What a script function returns to the routing script: every code the
//! module's functions can return, in one place (README, "Functions",
//! documents them per function).
//!
//! Never 0: a cfg function returning 0 stops the routing script.

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptResult {
    /// 1: the function did what it is for.
    True,
    /// -1: it did not (a refused request, an absent record). An error
    /// returns -1 too, after an error line (see `code`); so does a
    /// panic, caught by the FFI guard.
    False,
    /// -2: `billing_stop()` found nothing to bill (unanswered call, a
    /// call already billed, an unknown dialog).
    NothingToBill,
    /// 2: `billing_stop()` could not reach the store (unavailable) and
    /// kept the BYE in the node's billing journal: the call is billed,
    /// with this BYE's time, once the store is back.
    Journaled,
}

impl ScriptResult {
    /// The integer Kamailio gets.
    pub const fn code(self) -> i32 {
        match self {
            ScriptResult::True => 1,
            ScriptResult::False => -1,
            ScriptResult::NothingToBill => -2,
            ScriptResult::Journaled => 2,
        }
    }
}

impl From<bool> for ScriptResult {
    fn from(b: bool) -> ScriptResult {
        if b {
            ScriptResult::True
        } else {
            ScriptResult::False
        }
    }
}

/// The code of a script function's result; an error is logged, naming
/// the function, and returns `False`'s code.
pub fn code(function: &str, r: Result<ScriptResult>) -> i32 {
    match r {
        Ok(r) => r.code(),
        Err(e) => {
            log::error!("{function}: {e}");
            ScriptResult::False.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn codes_are_the_documented_ones_and_never_zero() {
        assert_eq!(ScriptResult::True.code(), 1);
        assert_eq!(ScriptResult::False.code(), -1);
        assert_eq!(ScriptResult::NothingToBill.code(), -2);
        assert_eq!(ScriptResult::Journaled.code(), 2);
        assert_eq!(ScriptResult::from(true), ScriptResult::True);
        assert_eq!(ScriptResult::from(false), ScriptResult::False);
        assert_eq!(code("f", Err(Error::NotInitialized)), -1);
        assert_eq!(code("f", Ok(ScriptResult::NothingToBill)), -2);
    }
}
