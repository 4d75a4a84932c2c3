//! The module's error type: a message for the operator's log.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

macro_rules! from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error(e.to_string())
            }
        }
    )*};
}

from_display!(
    crate::sip::headers::ScanError,
    crate::sip::via::ViaError,
    crate::sip::restore::RestoreError,
    crate::config::ParamError,
    crate::sip::dialog_ids::DialogError,
    crate::dialog::plan::PlanError
);

pub type Result<T> = std::result::Result<T, Error>;
