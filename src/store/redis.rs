//! The shared store: Redis through the `redis` crate's synchronous API,
//! as one server (`redis://`), behind Sentinel (`redis+sentinel://`) or as
//! a Cluster (`redis+cluster://`), each with or without TLS (`rediss`).
//!
//! One connection per Kamailio process (for a cluster: one per master),
//! opened on first use (after the fork). Every wait is bounded by
//! `timeout` (redis_timeout): a command by `timeout`; connecting to one
//! server by `timeout`; finding the master through the sentinels by
//! `CONNECT_BUDGET` × `timeout` in all; a cluster command, redirects
//! included, by `CLUSTER_BUDGET` × `timeout`. After a failure the
//! connection is dropped and no new attempt is made for `retry_after`:
//! operations in between fail at once (calls fail fast while Redis is
//! down), and the first operation after that reconnects by itself (behind
//! Sentinel: asks the sentinels again, so a failover is followed).

use super::redis_cluster::{self as cluster, Cluster};
use super::redis_connect;
use super::redis_sentinel::SentinelTarget;
use super::{ttl_ms, Guard, Lifecycle, Lived, Store, StoreError, StoreResult};
use crate::config::{RedisMode, RedisTls, RedisUrl, Storage};
use redis::cluster::ClusterClient;
use redis::{Client, Connection, ConnectionLike, RedisError};
use std::time::{Duration, Instant};

/// Multiples of redis_timeout a cluster command (redirects and the
/// crate's retries included) or connecting to a cluster may take.
pub const CLUSTER_BUDGET: u32 = 2;

/// How this store reaches Redis.
enum Target {
    Server(Client),
    Sentinel(SentinelTarget),
    Cluster(ClusterClient),
}

/// An open connection.
enum Conn {
    Server(Connection),
    Cluster(Box<Cluster>),
}

pub struct RedisStore {
    target: Target,
    conn: Option<Conn>,
    timeout: Duration,
    retry_after: Duration,
    /// While set and in the future: the backend is known down.
    down_until: Option<Instant>,
    last_error: String,
    /// SHA1 of the lifecycle script as Redis knows it (SCRIPT LOAD once per
    /// connection; EVALSHA then sends 40 bytes instead of the script, and
    /// Redis does not hash the script again for every call).
    lifecycle_sha: Option<String>,
}

/// rustls needs a process-wide crypto provider before its first TLS
/// connection; ring is the one built in.
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: another part of the process installed one first; it serves.
        // ring, though rustls now prefers aws-lc-rs (post-quantum key
        // exchange): aws-lc-rs is a large C build with cmake.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let _ = provider.install_default();
    });
}

impl RedisStore {
    /// Prepares the store from a `storage` URL without TLS files; does not
    /// connect.
    pub fn new(url: &str, timeout: Duration) -> StoreResult<RedisStore> {
        match Storage::parse(url) {
            Ok(Storage::Redis { redis, .. }) => Self::open(&redis, timeout, &RedisTls::default()),
            Ok(Storage::Lmdb { .. }) => Err(StoreError::Backend(format!(
                "Redis URL: {url:?} is not a Redis URL"
            ))),
            Err(e) => Err(StoreError::Backend(format!("Redis URL: {}", e.message))),
        }
    }

    /// Prepares the store; does not connect.
    pub fn open(url: &RedisUrl, timeout: Duration, tls: &RedisTls) -> StoreResult<RedisStore> {
        if url.tls {
            install_tls_provider();
        }
        let certs = tls.certificates().filter(|_| url.tls);
        let bad = |e: RedisError| StoreError::Backend(format!("Redis URL: {e}"));
        let target = match &url.mode {
            RedisMode::Single => Target::Server(
                redis_connect::client(url.node_url(&url.nodes[0], true, url.db), &certs)
                    .map_err(bad)?,
            ),
            RedisMode::Sentinel { master } => {
                Target::Sentinel(SentinelTarget::new(url, master, certs).map_err(bad)?)
            }
            RedisMode::Cluster => {
                let seeds = url.nodes.iter().map(|n| url.node_url(n, true, 0)).collect();
                Target::Cluster(cluster::client(seeds, timeout, certs).map_err(bad)?)
            }
        };
        Ok(RedisStore {
            target,
            conn: None,
            timeout,
            retry_after: Duration::from_secs(1),
            down_until: None,
            last_error: String::new(),
            lifecycle_sha: None,
        })
    }

    /// How long to fail fast after a failure before trying again.
    pub fn set_retry_after(&mut self, d: Duration) {
        self.retry_after = d;
    }

    fn connect(&mut self) -> Result<Conn, RedisError> {
        let t = self.timeout;
        match &mut self.target {
            Target::Server(client) => {
                let conn = redis_connect::open(client, t)?;
                conn.set_read_timeout(Some(t))?;
                conn.set_write_timeout(Some(t))?;
                Ok(Conn::Server(conn))
            }
            Target::Sentinel(s) => Ok(Conn::Server(s.connect(t)?)),
            Target::Cluster(client) => {
                let c = cluster::within(t * CLUSTER_BUDGET, || cluster::connect(client))?;
                Ok(Conn::Cluster(Box::new(c)))
            }
        }
    }

    fn fail(&mut self, e: RedisError) -> StoreError {
        self.conn = None;
        self.lifecycle_sha = None;
        self.down_until = Some(Instant::now() + self.retry_after);
        self.last_error = e.to_string();
        StoreError::Unavailable(format!("Redis: {e}"))
    }

    /// The process's connection: the open one, or a new one unless the
    /// backend failed less than `retry_after` ago.
    fn connection(&mut self) -> StoreResult<&mut Conn> {
        if self.conn.is_none() {
            if let Some(until) = self.down_until {
                if Instant::now() < until {
                    return Err(StoreError::Unavailable(format!(
                        "Redis: {} (next attempt in {} ms)",
                        self.last_error,
                        until.saturating_duration_since(Instant::now()).as_millis()
                    )));
                }
            }
            match self.connect() {
                Ok(c) => {
                    self.conn = Some(c);
                    self.down_until = None;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// One command on the process's connection (a cluster's within its
    /// budget).
    fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> StoreResult<Result<T, RedisError>> {
        let budget = self.timeout * CLUSTER_BUDGET;
        Ok(match self.connection()? {
            Conn::Server(c) => cmd.query::<T>(c),
            Conn::Cluster(c) => {
                let c: &mut dyn ConnectionLike = &mut **c;
                cluster::within(budget, || cmd.query::<T>(c))
            }
        })
    }

    /// Runs one command on the process's connection.
    fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> StoreResult<T> {
        let reused = self.conn.is_some();
        match self.query::<T>(cmd)? {
            Ok(v) => Ok(v),
            // A connection that worked before and is found closed (Redis
            // restarted, or a firewall dropped it while idle) failed before
            // the command reached a live server: reconnect and send it once
            // more, so that a Redis restart does not cost every worker one
            // failed message (a BYE among them, and with it a bill). The
            // same for a server that is no master any more (READONLY: a
            // failover demoted it; the write was refused, so sending it again
            // is safe): reconnecting asks the sentinels for the new one. A
            // timeout is never retried: the worker already waited
            // redis_timeout.
            Err(e)
                if reused && (e.is_connection_dropped() && !e.is_timeout() || is_readonly(&e)) =>
            {
                self.conn = None;
                self.lifecycle_sha = None;
                let retried = self.query::<T>(cmd)?;
                retried.map_err(|e| self.classify(e))
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Lost or stuck connections are dropped and retried later, and so is
    /// one to a demoted master; a server-side error (wrong type, OOM...)
    /// leaves the connection usable.
    fn classify(&mut self, e: RedisError) -> StoreError {
        if e.is_io_error() || e.is_timeout() || e.is_unrecoverable_error() || is_readonly(&e) {
            self.fail(e)
        } else {
            StoreError::Backend(format!("Redis: {e}"))
        }
    }

    /// One round trip (start-up check).
    pub fn ping(&mut self) -> StoreResult<()> {
        self.run::<String>(&redis::cmd("PING")).map(|_| ())
    }

    /// Keys matching `pattern` on every server of this store (each master
    /// of a cluster), at most `limit`, in at most 1000 SCAN rounds.
    fn scan_keys(&mut self, pattern: &[u8], limit: usize) -> StoreResult<Vec<Vec<u8>>> {
        let budget = self.timeout * CLUSTER_BUDGET;
        let nodes: Vec<Option<(String, u16)>> = match self.connection()? {
            Conn::Server(_) => vec![None],
            Conn::Cluster(c) => {
                let masters = cluster::within(budget, || cluster::masters(c));
                match masters {
                    Ok(m) => m.into_iter().map(Some).collect(),
                    Err(e) => return Err(self.classify(e)),
                }
            }
        };
        let mut out = Vec::new();
        let mut rounds = 0;
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                rounds += 1;
                if rounds > 1000 || out.len() >= limit {
                    return Ok(out);
                }
                let mut c = redis::cmd("SCAN");
                c.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, keys): (u64, Vec<Vec<u8>>) = match &node {
                    None => self.run(&c)?,
                    Some((host, port)) => self.run_on(host, *port, &c)?,
                };
                out.extend(keys.into_iter().take(limit - out.len()));
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Runs `cmd` on one node of the cluster.
    fn run_on<T: redis::FromRedisValue>(
        &mut self,
        host: &str,
        port: u16,
        cmd: &redis::Cmd,
    ) -> StoreResult<T> {
        let budget = self.timeout * CLUSTER_BUDGET;
        let result = match self.connection()? {
            Conn::Cluster(c) => cluster::within(budget, || cluster::on_node(c, host, port, cmd)),
            Conn::Server(c) => cmd.query(c),
        };
        result.map_err(|e| self.classify(e))
    }
}

fn is_readonly(e: &RedisError) -> bool {
    e.code() == Some("READONLY") || e.to_string().contains("READONLY")
}

/// `get_lifecycle` in one atomic round trip. The first byte of the value
/// is the record's state ('E' = ended); ARGV[3] (if not empty) must be
/// found at offset ARGV[4]; ARGV[5] is the value a 'replace' writes (after
/// the current state byte). Returns {0} (missing), {4} (guard mismatch),
/// {1, v} (refreshed or replaced), {2, v} (ended by this call) or {3, v}
/// (ended before).
const LIFECYCLE_SCRIPT: &str = "\
local v = redis.call('GET', KEYS[1]) \
if not v then return {0} end \
local off = tonumber(ARGV[4]) \
if #ARGV[3] > 0 and string.sub(v, off + 1, off + #ARGV[3]) ~= ARGV[3] then return {4} end \
if string.sub(v, 1, 1) == 'E' then return {3, v} end \
if ARGV[1] == 'end' then redis.call('SETRANGE', KEYS[1], 0, 'E') end \
if ARGV[1] == 'replace' then redis.call('SET', KEYS[1], string.sub(v, 1, 1) .. string.sub(ARGV[5], 2)) end \
redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
if ARGV[1] == 'end' then return {2, v} end \
return {1, v}";

/// EVALSHA of the lifecycle script: one key, so on a cluster it runs on
/// the node of that key's slot.
fn lifecycle_cmd(
    sha: &str,
    key: &[u8],
    what: &str,
    ttl: Duration,
    guard: Option<Guard<'_>>,
    value: &[u8],
) -> redis::Cmd {
    let mut c = redis::cmd("EVALSHA");
    c.arg(sha)
        .arg(1)
        .arg(key)
        .arg(what)
        .arg(ttl_ms(ttl))
        .arg(guard.map_or(&[][..], |g| g.expect))
        .arg(guard.map_or(0, |g| g.offset))
        .arg(value);
    c
}

impl Store for RedisStore {
    fn get_lifecycle(
        &mut self,
        key: &[u8],
        op: Lifecycle<'_>,
        guard: Option<Guard<'_>>,
    ) -> StoreResult<Lived> {
        let (what, ttl, value) = match op {
            Lifecycle::Refresh(t) => ("refresh", t, &[][..]),
            Lifecycle::End(t) => ("end", t, &[][..]),
            Lifecycle::Replace(v, t) => ("replace", t, v),
        };
        let mut reply = None;
        // Twice at most: a Redis that lost its scripts (restart, SCRIPT
        // FLUSH) answers NOSCRIPT once; the script is loaded again.
        for _ in 0..2 {
            let sha = match &self.lifecycle_sha {
                Some(sha) => sha.clone(),
                None => {
                    let mut load = redis::cmd("SCRIPT");
                    load.arg("LOAD").arg(LIFECYCLE_SCRIPT);
                    let sha: String = self.run(&load)?;
                    self.lifecycle_sha = Some(sha.clone());
                    sha
                }
            };
            let c = lifecycle_cmd(&sha, key, what, ttl, guard, value);
            match self.run::<Vec<redis::Value>>(&c) {
                Err(StoreError::Backend(m))
                    if m.to_uppercase().contains("NOSCRIPT") || m.contains("no script") =>
                {
                    self.lifecycle_sha = None;
                }
                other => {
                    reply = Some(other?);
                    break;
                }
            }
        }
        let reply = reply.ok_or_else(|| {
            StoreError::Backend("Redis: the lifecycle script is not loaded".into())
        })?;
        let (code, value): (i64, Option<Vec<u8>>) = match reply.as_slice() {
            [redis::Value::Int(c)] => (*c, None),
            [redis::Value::Int(c), v] => (*c, redis::from_redis_value(v.clone()).ok()),
            other => {
                return Err(StoreError::Backend(format!(
                    "Redis: unexpected lifecycle reply {other:?}"
                )))
            }
        };
        Ok(match (code, value) {
            (1, Some(v)) => Lived::Live(v),
            (2, Some(v)) => Lived::EndedNow(v),
            (3, Some(v)) => Lived::Ended(v),
            (4, _) => Lived::Mismatch,
            _ => Lived::Missing,
        })
    }

    fn ensure_available(&mut self) -> StoreResult<()> {
        self.connection().map(|_| ())
    }

    fn put(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> StoreResult<()> {
        let mut c = redis::cmd("SET");
        c.arg(key).arg(value).arg("PX").arg(ttl_ms(ttl));
        self.run::<()>(&c)
    }

    fn put_new(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> StoreResult<bool> {
        // Creation and TTL in one command: no record without expiry.
        let mut c = redis::cmd("SET");
        c.arg(key).arg(value).arg("PX").arg(ttl_ms(ttl)).arg("NX");
        Ok(self.run::<Option<String>>(&c)?.is_some())
    }

    fn get(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let mut c = redis::cmd("GET");
        c.arg(key);
        self.run(&c)
    }

    fn take(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let mut c = redis::cmd("GETDEL");
        c.arg(key);
        self.run(&c)
    }

    fn get_touch(&mut self, key: &[u8], ttl: Duration) -> StoreResult<Option<Vec<u8>>> {
        let mut c = redis::cmd("GETEX");
        c.arg(key).arg("PX").arg(ttl_ms(ttl));
        self.run(&c)
    }

    fn touch(&mut self, key: &[u8], ttl: Duration) -> StoreResult<bool> {
        let mut c = redis::cmd("PEXPIRE");
        c.arg(key).arg(ttl_ms(ttl));
        Ok(self.run::<i64>(&c)? == 1)
    }

    fn append_to_stream(&mut self, stream: &[u8], fields: &[(&str, &[u8])]) -> StoreResult<()> {
        let mut c = redis::cmd("XADD");
        c.arg(stream).arg("*");
        for (name, value) in fields {
            c.arg(*name).arg(*value);
        }
        self.run::<String>(&c).map(|_| ())
    }

    fn scan(&mut self, kind: &[u8], limit: usize) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut pattern = b"topos_rs:*".to_vec();
        pattern.extend_from_slice(kind);
        pattern.push(b'*');
        let mut out = Vec::new();
        for k in self.scan_keys(&pattern, limit)? {
            if let Some(v) = self.get(&k)? {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    fn delete(&mut self, key: &[u8]) -> StoreResult<bool> {
        let mut c = redis::cmd("DEL");
        c.arg(key);
        Ok(self.run::<i64>(&c)? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn the_lifecycle_script_runs_on_the_slot_of_its_one_key() {
        let key = b"topos_rs:{0123456789abcdef}:dlg:00ff 0000000000001234";
        let guard = Guard {
            offset: 1,
            expect: b"abcd",
        };
        let cmd = lifecycle_cmd(
            "0123456789012345678901234567890123456789",
            key,
            "end",
            Duration::from_secs(30),
            Some(guard),
            b"",
        );
        // EVALSHA <sha> <numkeys> <key> <args...>: one key, which a
        // cluster routes to the node of its slot.
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(args[0], b"EVALSHA");
        assert_eq!(args[2], b"1");
        assert_eq!(args[3], key);
        assert_eq!(Slot::for_key(&args[3]), Slot::for_key("0123456789abcdef"));
    }

    #[test]
    fn a_demoted_master_is_recognised() {
        let e = RedisError::from((
            redis::ErrorKind::Io,
            "x",
            "READONLY You can't write against a read only replica.".to_string(),
        ));
        assert!(is_readonly(&e));
    }
}
