//! Redis Cluster through the `redis` crate's cluster client, with every
//! socket wait cut to what is left of the store operation's deadline.
//!
//! Why a connection type of our own: the crate's synchronous cluster client
//! retries (a timed-out read is retried at once, a refreshed slot map
//! reconnects to every master), and right after connecting to a node it
//! sends a PING with no read timeout at all. A frozen node would hold a SIP
//! worker forever. `BoundedConnection` wraps the crate's `Connection` and
//! caps every connect, write and read by `min(the timeout the cluster
//! client asked for, time left before the deadline)`; once the deadline
//! has passed every call fails at once, so the crate's retries end too.

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection, Connect};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Connection, ConnectionLike, IntoConnectionInfo, RedisError, RedisResult, Value};
use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    // One Kamailio process = one thread: the deadline of the store
    // operation this process is running, if any.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` with every socket wait of the cluster client bounded so that
/// all of `f` ends within `budget` (plus the cost of failing at once).
pub fn within<T>(budget: Duration, f: impl FnOnce() -> T) -> T {
    let previous = DEADLINE.with(|d| d.replace(Some(Instant::now() + budget)));
    let out = f();
    DEADLINE.with(|d| d.set(previous));
    out
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the store operation's time (redis_timeout) ran out",
    ))
}

/// Time left before the deadline (None: no deadline); Err once it passed.
fn time_left() -> RedisResult<Option<Duration>> {
    match DEADLINE.with(Cell::get) {
        None => Ok(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(1) {
                Err(timed_out())
            } else {
                Ok(Some(left))
            }
        }
    }
}

/// The smaller of a timeout and the time left (None = unbounded).
fn capped(timeout: Option<Duration>, left: Option<Duration>) -> Option<Duration> {
    match (timeout, left) {
        (Some(t), Some(l)) => Some(t.min(l)),
        (t, None) => t,
        (None, l) => l,
    }
}

/// A node connection whose waits end by the operation's deadline.
pub struct BoundedConnection {
    inner: Connection,
    /// What the cluster client asked for (read, write); the trait sets
    /// them through `&self`.
    asked: Cell<(Option<Duration>, Option<Duration>)>,
    /// What the socket has now (setsockopt only when it changes).
    applied: Cell<(Option<Duration>, Option<Duration>)>,
}

impl BoundedConnection {
    /// Sets the socket timeouts for the next wait; Err when no time is left.
    fn bound(&self) -> RedisResult<()> {
        let left = time_left()?;
        let (read, write) = self.asked.get();
        let want = (capped(read, left), capped(write, left));
        if want != self.applied.get() {
            self.inner.set_read_timeout(want.0)?;
            self.inner.set_write_timeout(want.1)?;
            self.applied.set(want);
        }
        Ok(())
    }
}

impl Connect for BoundedConnection {
    fn connect<T>(info: T, timeout: Option<Duration>) -> RedisResult<Self>
    where
        T: IntoConnectionInfo,
    {
        let t = capped(timeout, time_left()?);
        let info = super::redis_connect::connection_info(info)?;
        let setup = t.map(|t| super::redis_connect::per_setup_reply(&info, t));
        let inner = <Connection as Connect>::connect(info, setup)?;
        // The crate leaves the socket without a timeout after its handshake;
        // the cluster client's next step (PING) must not wait forever.
        inner.set_read_timeout(t)?;
        inner.set_write_timeout(t)?;
        Ok(BoundedConnection {
            inner,
            asked: Cell::new((t, t)),
            applied: Cell::new((t, t)),
        })
    }

    fn send_packed_command(&mut self, cmd: &[u8]) -> RedisResult<()> {
        self.bound()?;
        self.inner.send_packed_command(cmd)
    }

    fn set_write_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        let (read, _) = self.asked.get();
        self.asked.set((read, dur));
        self.bound()
    }

    fn set_read_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        let (_, write) = self.asked.get();
        self.asked.set((dur, write));
        self.bound()
    }

    fn recv_response(&mut self) -> RedisResult<Value> {
        self.bound()?;
        self.inner.recv_response()
    }
}

impl ConnectionLike for BoundedConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.bound()?;
        self.inner.req_packed_command(cmd)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.bound()?;
        self.inner.req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }

    fn check_connection(&mut self) -> bool {
        self.bound().is_ok() && self.inner.check_connection()
    }

    fn is_open(&self) -> bool {
        self.inner.is_open()
    }
}

pub type Cluster = ClusterConnection<BoundedConnection>;

/// The cluster client for these seed node URLs: a redirect (MOVED, ASK)
/// and a failover's READONLY need a retry or two, never sixteen with
/// seconds of sleep between them (the crate's defaults).
pub fn client(
    seeds: Vec<String>,
    timeout: Duration,
    certs: Option<redis::TlsCertificates>,
) -> RedisResult<ClusterClient> {
    let mut b = ClusterClientBuilder::new(seeds)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(2)
        .min_retry_wait(10)
        .max_retry_wait(50);
    if let Some(certs) = certs {
        b = b.certs(certs);
    }
    b.build()
}

/// Connects to the cluster (a seed node, the slot map, the masters).
pub fn connect(client: &ClusterClient) -> RedisResult<Cluster> {
    // The generic connection is the crate's extension point for the node
    // connection type (public, though hidden from its docs): a crate
    // update without it fails the build, never a running Kamailio.
    client.get_generic_connection::<BoundedConnection>()
}

/// The masters' addresses, from CLUSTER SLOTS (a SCAN must visit each).
pub fn masters(conn: &mut Cluster) -> RedisResult<Vec<(String, u16)>> {
    let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER").arg("SLOTS").query(conn)?;
    let mut out: Vec<(String, u16)> = Vec::new();
    for range in slots {
        // [start, end, [ip, port, id, ...], replicas...]
        let Some(master) = range.get(2) else { continue };
        let node: Vec<Value> = redis::from_redis_value(master.clone())?;
        let (Some(ip), Some(port)) = (node.first(), node.get(1)) else {
            continue;
        };
        let ip: String = redis::from_redis_value(ip.clone())?;
        let port: u16 = redis::from_redis_value(port.clone())?;
        if !ip.is_empty() && !out.contains(&(ip.clone(), port)) {
            out.push((ip, port));
        }
    }
    Ok(out)
}

/// Runs `cmd` on the node at `host:port`.
pub fn on_node<T: redis::FromRedisValue>(
    conn: &mut Cluster,
    host: &str,
    port: u16,
    cmd: &Cmd,
) -> RedisResult<T> {
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.to_string(),
        port,
    });
    Ok(redis::from_redis_value(
        conn.route_command(cmd, routing)?.extract_error()?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_caps_every_wait_and_then_fails_at_once() {
        let t = Some(Duration::from_millis(250));
        assert_eq!(capped(t, None), t);
        assert_eq!(
            capped(t, Some(Duration::from_millis(40))),
            Some(Duration::from_millis(40))
        );
        assert_eq!(time_left().unwrap(), None);
        within(Duration::from_millis(30), || {
            assert!(time_left().unwrap().unwrap() <= Duration::from_millis(30));
            std::thread::sleep(Duration::from_millis(35));
            let e = time_left().unwrap_err();
            assert!(e.is_timeout(), "{e}");
        });
        assert_eq!(
            time_left().unwrap(),
            None,
            "the deadline ends with the operation"
        );
    }
}
