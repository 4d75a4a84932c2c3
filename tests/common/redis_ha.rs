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
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))?;
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

pub struct SentinelSet {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
}

impl SentinelSet {
    /// Master, replica (in sync) and three sentinels that see both and each
    /// other: a failover can happen once this returns. The sentinels call
    /// the master down after 1 s without answers.
    pub fn start() -> SentinelSet {
        let mp = free_tcp_port();
        let master = RedisServer::start_with(mp, mp, &[]);
        let rp = free_tcp_port();
        let replica =
            RedisServer::start_with(rp, rp, &["--replicaof", "127.0.0.1", &mp.to_string()]);
        wait_until("the replica syncs", Duration::from_secs(10), || {
            query::<String>(rp, redis::cmd("INFO").arg("replication"))
                .is_ok_and(|i| i.contains("master_link_status:up"))
        });
        let lines = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {mp} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
             sentinel failover-timeout {MASTER_NAME} 3000\n\
             sentinel parallel-syncs {MASTER_NAME} 1"
        );
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::sentinel(free_tcp_port(), &lines))
            .collect();
        for s in &sentinels {
            wait_until(
                "each sentinel sees the replica and the other sentinels",
                Duration::from_secs(20),
                || {
                    let m: HashMap<String, String> = match query(
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
        }
    }

    /// `redis+sentinel://` (or `rediss+sentinel://`) URL of the three.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}/0", nodes.join(","))
    }

    /// The master's port as the first sentinel that answers names it.
    pub fn named_master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let addr: Option<(String, String)> = query(
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
                && query::<redis::Value>(rp, &redis::cmd("ROLE"))
                    .is_ok_and(|v| format!("{v:?}").contains("master"))
        })
    }
}

pub struct ClusterSet {
    pub nodes: Vec<RedisServer>,
}

impl ClusterSet {
    /// Three masters sharing the 16384 slots (`redis-cli --cluster
    /// create`), every node reporting `cluster_state:ok`.
    pub fn start() -> ClusterSet {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_tcp_port();
                let bus = free_tcp_port();
                RedisServer::start_with(
                    port,
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",
                        &bus.to_string(),
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let mut create = Command::new("redis-cli");
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
        for n in &nodes {
            wait_until("cluster_state:ok", Duration::from_secs(20), || {
                query::<String>(n.port, redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            });
        }
        ClusterSet { nodes }
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The keys matching `pattern` on each node (KEYS: a test's small data).
    pub fn keys_per_node(&self, pattern: &str) -> Vec<Vec<String>> {
        self.nodes
            .iter()
            .map(|n| query(n.port, redis::cmd("KEYS").arg(pattern)).unwrap())
            .collect()
    }
}
