//! Shared helpers of the end-to-end tests: a real Kamailio process and
//! SIP peers on 127.0.0.1.
#![allow(dead_code)]

pub mod calls;
pub mod ctl;
pub mod kamailio;
pub mod redis;
pub mod redis_ha;
pub mod redis_tls;
pub mod sip;
pub mod sipp;
