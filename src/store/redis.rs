//! The cluster store: Redis through the `redis` crate's synchronous API.
//!
//! One connection per Kamailio process, opened on first use (after the
//! fork). Connect, read and write are bounded by `timeout`, so a SIP worker
//! never waits longer. After a failure the connection is dropped and no new
//! attempt is made for `retry_after`: operations in between fail at once
//! (calls fail fast while Redis is down), and the first operation after that
//! reconnects by itself.

use super::{ttl_ms, Guard, Lifecycle, Lived, Store, StoreError, StoreResult};
use redis::{Client, Connection, RedisError};
use std::time::{Duration, Instant};

pub struct RedisStore {
    client: Client,
    conn: Option<Connection>,
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

impl RedisStore {
    /// Prepares the store; does not connect.
    pub fn new(url: &str, timeout: Duration) -> StoreResult<RedisStore> {
        let client =
            Client::open(url).map_err(|e| StoreError::Backend(format!("Redis URL: {e}")))?;
        Ok(RedisStore {
            client,
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

    fn connect(&self) -> Result<Connection, RedisError> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
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
    fn connection(&mut self) -> StoreResult<&mut Connection> {
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

    /// Runs one command on the process's connection.
    fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> StoreResult<T> {
        let reused = self.conn.is_some();
        match cmd.query::<T>(self.connection()?) {
            Ok(v) => Ok(v),
            // A connection that worked before and is found closed (Redis
            // restarted, or a firewall dropped it while idle) failed before
            // the command reached a live server: reconnect and send it once
            // more, so that a Redis restart does not cost every worker one
            // failed message (a BYE among them, and with it a bill). A
            // timeout is never retried: the worker already waited
            // redis_timeout.
            Err(e) if reused && e.is_connection_dropped() && !e.is_timeout() => {
                self.conn = None;
                let retried = cmd.query::<T>(self.connection()?);
                retried.map_err(|e| self.classify(e))
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Lost or stuck connections are dropped and retried later; a
    /// server-side error (wrong type, OOM...) leaves the connection usable.
    fn classify(&mut self, e: RedisError) -> StoreError {
        if e.is_io_error() || e.is_timeout() || e.is_unrecoverable_error() {
            self.fail(e)
        } else {
            StoreError::Backend(format!("Redis: {e}"))
        }
    }

    /// One round trip (start-up check).
    pub fn ping(&mut self) -> StoreResult<()> {
        self.run::<String>(&redis::cmd("PING")).map(|_| ())
    }
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
            let mut c = redis::cmd("EVALSHA");
            c.arg(&sha)
                .arg(1)
                .arg(key)
                .arg(what)
                .arg(ttl_ms(ttl))
                .arg(guard.map_or(&[][..], |g| g.expect))
                .arg(guard.map_or(0, |g| g.offset))
                .arg(value);
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
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        // Bounded: at most 1000 SCAN rounds, stops at `limit` records.
        for _ in 0..1000 {
            let mut c = redis::cmd("SCAN");
            c.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.run(&c)?;
            for k in keys {
                if out.len() >= limit {
                    return Ok(out);
                }
                if let Some(v) = self.get(&k)? {
                    out.push((k, v));
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
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
