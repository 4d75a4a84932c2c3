//! Opening one connection to one Redis server within a time bound.
//!
//! The crate's connect with a timeout bounds the TCP connect, then sends
//! its set-up commands (AUTH, SELECT, two CLIENT SETINFO) in one pipeline
//! and reads each reply with the whole timeout: a server that accepts the
//! connection and then hangs would cost four timeouts. CLIENT SETINFO
//! (only a label for CLIENT LIST) is left out, and the time is split
//! between the replies that remain.

use redis::{Client, Connection, ConnectionInfo, IntoConnectionInfo, RedisResult};
use std::time::{Duration, Instant};

/// The connection details of `url` without CLIENT SETINFO.
pub fn connection_info(url: impl IntoConnectionInfo) -> RedisResult<ConnectionInfo> {
    let info = url.into_connection_info()?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    Ok(info.set_redis_settings(settings))
}

/// A client for one server (`redis://` or `rediss://` URL).
pub fn client(url: String, certs: &Option<redis::TlsCertificates>) -> RedisResult<Client> {
    let info = connection_info(url)?;
    match certs {
        Some(c) => Client::build_with_tls(info, c.clone()),
        None => Client::open(info),
    }
}

/// How long the crate may wait for each set-up reply so that all of them
/// fit in `t`.
pub fn per_setup_reply(info: &ConnectionInfo, t: Duration) -> Duration {
    let s = info.redis_settings();
    let replies = u32::from(s.password().is_some()) + u32::from(s.db() != 0);
    t / replies.max(1)
}

/// A connection to `client` opened within `t`, its reads and writes
/// bounded by what is left of `t`.
pub fn open(client: &Client, t: Duration) -> RedisResult<Connection> {
    let start = Instant::now();
    let conn =
        client.get_connection_with_timeout(per_setup_reply(client.get_connection_info(), t))?;
    let left = t
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1));
    conn.set_read_timeout(Some(left))?;
    conn.set_write_timeout(Some(left))?;
    Ok(conn)
}
