//! Kamailio's listening sockets as the module needs them: the sockets
//! `trusted_socket` names, found among Kamailio's at start-up (a socket it
//! does not listen on stops start-up), and which of them a message came in
//! on or will leave on. A socket is compared by identity: Kamailio keeps
//! one `socket_info` per listening socket for its whole run, created before
//! the fork, at the same address in every process.

use super::bindings::{
    sip_protos_PROTO_SCTP, sip_protos_PROTO_TCP, sip_protos_PROTO_TLS, sip_protos_PROTO_UDP,
    topos_shim_find_socket, topos_shim_next_hop_socket, topos_shim_rcv_socket_ptr,
};
use super::msg::SipMsg;
use crate::config::{ParamError, SocketProto, TrustedSocket};
use crate::error::{Error, Result};
use std::os::raw::{c_char, c_int};
use std::sync::OnceLock;

/// The trusted sockets' identities (their `socket_info` addresses).
static TRUSTED: OnceLock<Vec<usize>> = OnceLock::new();

fn proto_number(p: SocketProto) -> c_int {
    (match p {
        SocketProto::Udp => sip_protos_PROTO_UDP,
        SocketProto::Tcp => sip_protos_PROTO_TCP,
        SocketProto::Tls => sip_protos_PROTO_TLS,
        SocketProto::Sctp => sip_protos_PROTO_SCTP,
    }) as c_int
}

/// Finds each trusted socket among Kamailio's (mod_init, before the
/// fork); one Kamailio does not listen on is an error naming it.
pub fn install_trusted(sockets: &[TrustedSocket]) -> Result<()> {
    let mut found = Vec::with_capacity(sockets.len());
    for s in sockets {
        let ip = s.ip.to_string();
        // SAFETY: the shim reads the address text during the call and
        // returns one of the core's sockets (or NULL); sockets are fixed
        // before mod_init.
        let p = unsafe {
            topos_shim_find_socket(
                proto_number(s.proto),
                ip.as_ptr() as *const c_char,
                ip.len() as c_int,
                s.port as c_int,
            )
        };
        if p.is_null() {
            return Err(Error::Param(ParamError {
                param: "trusted_socket",
                message: format!(
                    "{s} is not a socket Kamailio listens on (add listen={s}, or fix the value)"
                ),
            }));
        }
        found.push(p as usize);
    }
    let _ = TRUSTED.set(found);
    Ok(())
}

fn is_trusted(p: *mut std::os::raw::c_void) -> bool {
    !p.is_null() && TRUSTED.get().is_some_and(|t| t.contains(&(p as usize)))
}

/// True if `msg` came in on a trusted socket.
pub fn came_in_trusted(msg: &SipMsg) -> bool {
    if TRUSTED.get().is_none_or(Vec::is_empty) {
        return false;
    }
    // SAFETY: reads the message's receive socket pointer.
    is_trusted(unsafe { topos_shim_rcv_socket_ptr(msg.as_ptr()) })
}

/// True if `msg` will leave on a trusted socket, as far as that is known
/// before `t_relay()` (a forced socket, or the socket for the next hop's
/// IP address; a next hop named by DNS is not).
pub fn leaves_trusted(msg: &SipMsg) -> bool {
    if TRUSTED.get().is_none_or(Vec::is_empty) {
        return false;
    }
    // SAFETY: the shim parses the message's next hop and asks the core for
    // its send socket; it changes nothing.
    is_trusted(unsafe { topos_shim_next_hop_socket(msg.as_ptr()) })
}
