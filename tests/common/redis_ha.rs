//! Redis as production runs it, on loopback, started by the test and
//! stopped by PID when dropped: a master with one replica under three
//! sentinels, and a Redis Cluster of three masters.

use super::kamailio::free_tcp_port;
use super::redis::RedisServer;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The master name the sentinels monitor.
pub const MASTER_NAME: &str = "topos";

/// A connection to the server on `port` whose every wait ends within 2 s.
pub fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    connect_tls(port, None, None)
}

/// The same over TLS with these certificates (None: plain TCP), with this
/// password (AUTH).
pub fn connect_tls(
    port: u16,
    tls: Option<&redis::TlsCertificates>,
    password: Option<&str>,
) -> redis::RedisResult<redis::Connection> {
    let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
    let client = match tls {
        None => redis::Client::open(format!("redis://{auth}127.0.0.1:{port}/0"))?,
        Some(certs) => {
            super::redis_tls::install_crypto();
            redis::Client::build_with_tls(
                format!("rediss://{auth}127.0.0.1:{port}/0"),
                certs.clone(),
            )?
        }
    };
    let c = client.get_connection_with_timeout(Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    c.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(c)
}

/// One command to the server on `port`.
pub fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    cmd.query(&mut connect(port)?)
}

/// Polls `check` every 100 ms until it is true; panics with `what` after
/// `limit`. Returns how long it took.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// One command to the server on `port`, over TLS with `tls`.
pub fn query_with<T: redis::FromRedisValue>(
    tls: Option<&redis::TlsCertificates>,
    password: Option<&str>,
    port: u16,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    cmd.query(&mut connect_tls(port, tls, password)?)
}

pub struct SentinelSet {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
    tls: Option<redis::TlsCertificates>,
    /// Of the servers and the sentinels alike.
    password: Option<String>,
}

impl SentinelSet {
    /// Master, replica (in sync) and three sentinels that see both and each
    /// other: a failover can happen once this returns. The sentinels call
    /// the master down after 1 s without answers.
    pub fn start() -> SentinelSet {
        Self::start_tls(None)
    }

    /// With `tls`: every server and sentinel only on its TLS port,
    /// replication and the sentinels' links on TLS too.
    pub fn start_tls(files: Option<&super::redis_tls::TlsFiles>) -> SentinelSet {
        Self::start_with(files, None)
    }

    /// With `password`: the servers and the sentinels require it
    /// (`requirepass`), and use it with each other.
    pub fn start_with(
        files: Option<&super::redis_tls::TlsFiles>,
        password: Option<&str>,
    ) -> SentinelSet {
        let tls = files.map(|f| f.client_certificates());
        let pw_args: Vec<String> = match password {
            Some(p) => vec![
                "--requirepass".into(),
                p.into(),
                "--masterauth".into(),
                p.into(),
            ],
            None => Vec::new(),
        };
        // (plain port, port that answers, more arguments)
        let ports = || {
            let port = free_tcp_port();
            match files {
                None => (port, port, Vec::new()),
                Some(f) => {
                    let mut args: Vec<String> = ["--tls-port", &port.to_string()]
                        .iter()
                        .chain(&["--tls-replication", "yes"])
                        .map(|a| a.to_string())
                        .collect();
                    args.extend(f.server_args());
                    (0, port, args)
                }
            }
        };
        let (plain, mp, mut args) = ports();
        args.extend(pw_args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let master = RedisServer::start_with(plain, mp, &args);
        let (plain, rp, mut args) = ports();
        args.extend(pw_args.iter().cloned());
        args.extend(["--replicaof".into(), "127.0.0.1".into(), mp.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let replica = RedisServer::start_with(plain, rp, &args);
        wait_until("the replica syncs", Duration::from_secs(10), || {
            query_with::<String>(
                tls.as_ref(),
                password,
                rp,
                redis::cmd("INFO").arg("replication"),
            )
            .is_ok_and(|i| i.contains("master_link_status:up"))
        });
        let mut lines = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {mp} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
             sentinel failover-timeout {MASTER_NAME} 3000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n"
        );
        if let Some(p) = password {
            lines.push_str(&format!(
                "requirepass {p}\nsentinel auth-pass {MASTER_NAME} {p}\nsentinel sentinel-pass {p}\n"
            ));
        }
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_tcp_port();
                let mut lines = lines.clone();
                if let Some(f) = files {
                    // A sentinel's own port on TLS only, and TLS to the
                    // servers and the other sentinels.
                    lines.push_str(&format!(
                        "port 0\ntls-port {port}\ntls-replication yes\n\
                         tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n",
                        f.server_cert.display(),
                        f.server_key.display(),
                        f.ca.display()
                    ));
                }
                RedisServer::sentinel(port, &lines)
            })
            .collect();
        lines.clear();
        for s in &sentinels {
            wait_until(
                "each sentinel sees the replica and the other sentinels",
                Duration::from_secs(20),
                || {
                    let m: HashMap<String, String> = match query_with(
                        tls.as_ref(),
                        password,
                        s.port,
                        redis::cmd("SENTINEL").arg("master").arg(MASTER_NAME),
                    ) {
                        Ok(m) => m,
                        Err(_) => return false,
                    };
                    m.get("num-slaves").map(String::as_str) == Some("1")
                        && m.get("num-other-sentinels").map(String::as_str) == Some("2")
                },
            );
        }
        SentinelSet {
            master,
            replica,
            sentinels,
            tls,
            password: password.map(str::to_string),
        }
    }

    /// One command to the server or sentinel on `port`.
    pub fn query<T: redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        query_with(self.tls.as_ref(), self.password.as_deref(), port, cmd)
    }

    /// `redis+sentinel://` (or `rediss+sentinel://`) URL of the three.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let s = if self.tls.is_some() { "s" } else { "" };
        let auth = self
            .password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        format!(
            "redis{s}+sentinel://{auth}{}/{MASTER_NAME}/0",
            nodes.join(",")
        )
    }

    /// The master's port as the first sentinel that answers names it.
    pub fn named_master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let addr: Option<(String, String)> = self
                .query(
                    s.port,
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(MASTER_NAME),
                )
                .ok()?;
            addr?.1.parse().ok()
        })
    }

    /// Waits until the sentinels name the replica as master and it says so
    /// itself (ROLE); returns how long that took.
    pub fn wait_for_promotion(&self, limit: Duration) -> Duration {
        let rp = self.replica.port;
        wait_until("the sentinels promote the replica", limit, || {
            self.named_master_port() == Some(rp)
                && self
                    .query::<redis::Value>(rp, &redis::cmd("ROLE"))
                    .is_ok_and(|v| format!("{v:?}").contains("master"))
        })
    }
}

pub struct ClusterSet {
    pub nodes: Vec<RedisServer>,
    tls: Option<redis::TlsCertificates>,
}

impl ClusterSet {
    /// Three masters sharing the 16384 slots (`redis-cli --cluster
    /// create`), every node reporting `cluster_state:ok`.
    pub fn start() -> ClusterSet {
        Self::start_tls(None)
    }

    /// With `tls`: every node only on its TLS port, the cluster bus on TLS
    /// too (`tls-cluster yes`).
    pub fn start_tls(tls: Option<&super::redis_tls::TlsFiles>) -> ClusterSet {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_tcp_port();
                let bus = free_tcp_port();
                let mut args: Vec<String> = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                    "--cluster-node-timeout",
                    "2000",
                ]
                .iter()
                .map(|a| a.to_string())
                .collect();
                let plain = match tls {
                    None => port,
                    Some(files) => {
                        args.extend(
                            ["--tls-port", &port.to_string(), "--tls-cluster", "yes"]
                                .iter()
                                .map(|a| a.to_string()),
                        );
                        args.extend(files.server_args());
                        0
                    }
                };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                RedisServer::start_with(plain, port, &args)
            })
            .collect();
        let certs = tls.map(|t| t.client_certificates());
        let mut create = Command::new("redis-cli");
        if let Some(files) = tls {
            create.arg("--tls").arg("--cacert").arg(&files.ca);
            create.arg("--cert").arg(&files.client_cert);
            create.arg("--key").arg(&files.client_key);
        }
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = create.spawn().expect("redis-cli (redis-tools)");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-cli --cluster create did not end within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let out = child.wait_with_output().unwrap();
        assert!(
            status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let set = ClusterSet { nodes, tls: certs };
        for n in &set.nodes {
            wait_until("cluster_state:ok", Duration::from_secs(20), || {
                set.query::<String>(n.port, redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            });
        }
        set
    }

    /// One command to the node on `port`.
    pub fn query<T: redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        cmd.query(&mut connect_tls(port, self.tls.as_ref(), None)?)
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let s = if self.tls.is_some() { "s" } else { "" };
        format!("redis{s}+cluster://{}", nodes.join(","))
    }

    /// The keys matching `pattern` on each node (KEYS: a test's small data).
    pub fn keys_per_node(&self, pattern: &str) -> Vec<Vec<String>> {
        self.nodes
            .iter()
            .map(|n| self.query(n.port, redis::cmd("KEYS").arg(pattern)).unwrap())
            .collect()
    }
}
