//! Finding the Redis master through Sentinel, every step bounded.
//!
//! The `redis` crate's own synchronous Sentinel client (feature
//! `sentinel`) connects to sentinels and masters and reads their answers
//! without any timeout: one frozen sentinel would hold a SIP worker
//! forever. So the discovery is done here with the crate's ordinary
//! client (connect with a timeout, read and write timeouts, its RESP
//! parser), following the Sentinel client protocol: ask each sentinel in
//! turn `SENTINEL get-master-addr-by-name <name>`, connect to the address
//! it names and check with `ROLE` that the server is a master; the
//! sentinel that answered is asked first next time.
//!
//! Bound: all of it (every sentinel asked, the master connected and
//! checked) within `CONNECT_BUDGET` × redis_timeout, each step within
//! redis_timeout.

use super::redis_connect::{client, open};
use crate::config::{RedisNode, RedisUrl};
use redis::{Client, Connection, RedisError, RedisResult, Role};
use std::time::{Duration, Instant};

/// Multiples of redis_timeout that finding and connecting to the master
/// may take in all, whatever is down.
pub const CONNECT_BUDGET: u32 = 3;

/// One sentinel of the URL.
struct Sentinel {
    name: String,
    /// Without credentials (most sentinels have no password of their own).
    plain: Client,
    /// With the URL's credentials, for a sentinel that answers NOAUTH
    /// (`requirepass` in its configuration): None if the URL has none.
    authed: Option<Client>,
}

pub struct SentinelTarget {
    /// The one that answered last first.
    sentinels: Vec<Sentinel>,
    master: String,
    url: RedisUrl,
    certs: Option<redis::TlsCertificates>,
}

fn unavailable(text: String) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, text))
}

/// The time left of a step that must end by `deadline` and take at most
/// `step`; Err once the deadline passed.
fn step_time(deadline: Instant, step: Duration) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        Err("no time left".to_string())
    } else {
        Ok(left.min(step))
    }
}

impl SentinelTarget {
    pub fn new(
        url: &RedisUrl,
        master: &str,
        certs: Option<redis::TlsCertificates>,
    ) -> RedisResult<SentinelTarget> {
        // Sentinels are asked without the database of the URL (the
        // master's), and without its credentials unless they ask for them.
        let sentinels = url
            .nodes
            .iter()
            .map(|n| {
                Ok(Sentinel {
                    name: n.to_string(),
                    plain: client(url.node_url(n, false, 0), &certs)?,
                    authed: match url.auth {
                        Some(_) => Some(client(url.node_url(n, true, 0), &certs)?),
                        None => None,
                    },
                })
            })
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(SentinelTarget {
            sentinels,
            master: master.to_string(),
            url: url.clone(),
            certs,
        })
    }

    /// A connection to the current master, its reads and writes bounded by
    /// `timeout`.
    pub fn connect(&mut self, timeout: Duration) -> RedisResult<Connection> {
        let deadline = Instant::now() + timeout * CONNECT_BUDGET;
        let mut failures = Vec::new();
        for i in 0..self.sentinels.len() {
            let name = self.sentinels[i].name.clone();
            match self.through(i, deadline, timeout) {
                Ok(conn) => {
                    // The sentinel that answered is asked first next time.
                    let s = self.sentinels.remove(i);
                    self.sentinels.insert(0, s);
                    return Ok(conn);
                }
                Err(e) => failures.push(format!("sentinel {name}: {e}")),
            }
        }
        Err(unavailable(format!(
            "no master \"{}\" from {} sentinels ({})",
            self.master,
            self.sentinels.len(),
            failures.join("; ")
        )))
    }

    /// One sentinel's answer: the master's address, if it knows one.
    fn ask(
        &self,
        sentinel: &Client,
        deadline: Instant,
        timeout: Duration,
    ) -> RedisResult<Option<(String, String)>> {
        let t = step_time(deadline, timeout).map_err(unavailable)?;
        let mut s = open(sentinel, t)?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master)
            .query(&mut s)
    }

    /// Asks sentinel `i` for the master and connects to it.
    fn through(
        &self,
        i: usize,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Connection, String> {
        let sentinel = &self.sentinels[i];
        let addr = match self.ask(&sentinel.plain, deadline, timeout) {
            Err(e) if e.code() == Some("NOAUTH") => match &sentinel.authed {
                Some(authed) => self.ask(authed, deadline, timeout),
                None => Err(e),
            },
            other => other,
        }
        .map_err(|e| e.to_string())?;
        let (host, port) =
            addr.ok_or_else(|| format!("does not know master \"{}\"", self.master))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("named master port {port:?}"))?;
        let node = RedisNode { host, port };
        let t = step_time(deadline, timeout)?;
        let client = client(self.url.node_url(&node, true, self.url.db), &self.certs)
            .map_err(|e| format!("master {node}: {e}"))?;
        let mut conn = open(&client, t).map_err(|e| format!("master {node}: {e}"))?;
        // A sentinel may name a server that is no master any more (its
        // view is stale during a failover): never write to a replica.
        match redis::cmd("ROLE").query::<Role>(&mut conn) {
            Ok(Role::Primary { .. }) => {}
            Ok(_) => return Err(format!("named {node}, which is not a master")),
            Err(e) => return Err(format!("master {node}: {e}")),
        }
        conn.set_read_timeout(Some(timeout))
            .and_then(|_| conn.set_write_timeout(Some(timeout)))
            .map_err(|e| e.to_string())?;
        Ok(conn)
    }
}
