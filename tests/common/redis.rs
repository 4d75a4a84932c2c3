//! A real `redis-server` for a test, on a free loopback port, without
//! persistence (or with it, to restart "the same" server); stopped by PID
//! when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: std::path::PathBuf,
    /// Remove `dir` when dropped (not for a durable server's directory,
    /// which the next instance reuses).
    owns_dir: bool,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = super::kamailio::free_tcp_port();
        Self::start_on(port)
    }

    pub fn start_on(port: u16) -> RedisServer {
        let dir = super::kamailio::scratch_dir("redis");
        let mut r = Self::spawn(port, dir, &["--appendonly", "no"]);
        r.owns_dir = true;
        r
    }

    /// A server that keeps its data in `dir` (append-only file, written
    /// through): `shutdown` and a new `start_durable` on the same port and
    /// directory bring the data back, as an operator's Redis would.
    pub fn start_durable(port: u16, dir: &std::path::Path) -> RedisServer {
        Self::spawn(
            port,
            dir.to_path_buf(),
            &["--appendonly", "yes", "--appendfsync", "always"],
        )
    }

    fn spawn(port: u16, dir: std::path::PathBuf, persistence: &[&str]) -> RedisServer {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no"])
            .args(persistence)
            .arg("--dir")
            .arg(&dir);
        Self::spawn_cmd(cmd, port, dir)
    }

    /// A server without persistence on a free port, with more arguments
    /// (`--replicaof`, `--cluster-enabled`, TLS...). `listen_port` is the
    /// port that answers when it is up (the TLS port for a TLS-only one:
    /// pass `--port 0` in `args` then).
    pub fn start_with(port: u16, listen_port: u16, args: &[&str]) -> RedisServer {
        let dir = super::kamailio::scratch_dir("redis");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .args(args);
        let mut r = Self::spawn_cmd(cmd, listen_port, dir);
        r.port = listen_port;
        r.owns_dir = true;
        r
    }

    /// A sentinel (`redis-server <conf> --sentinel`) on `port`, with these
    /// lines in its configuration file (sentinels rewrite theirs).
    pub fn sentinel(port: u16, lines: &str) -> RedisServer {
        let dir = super::kamailio::scratch_dir("sentinel");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\nlogfile {}\n{lines}\n",
                dir.display(),
                dir.join("sentinel.log").display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("redis-server");
        cmd.arg(&conf).arg("--sentinel");
        let mut r = Self::spawn_cmd(cmd, port, dir);
        r.owns_dir = true;
        r
    }

    fn spawn_cmd(mut cmd: Command, port: u16, dir: std::path::PathBuf) -> RedisServer {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (make deps installs it)");
        let r = RedisServer {
            child: Some(child),
            port,
            dir,
            owns_dir: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// Its log file (servers made by `start_with` and `sentinel`).
    pub fn log(&self) -> String {
        ["redis.log", "sentinel.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
            .collect()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        // SAFETY: signals the process this test started.
        unsafe { libc::kill(self.pid(), libc::SIGSTOP) };
    }

    pub fn thaw(&self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.pid(), libc::SIGCONT) };
    }

    /// Stops the server the way an operator does (SIGTERM: it finishes
    /// writing its data and exits); waits for it, bounded.
    pub fn shutdown(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signals the process this test started.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    // SAFETY: as above.
                    unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: stops the process this test started (frozen or not).
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The Redis commands that touched data since the last `CONFIG RESETSTAT`,
/// with Redis's `INFO commandstats` text. Left out: the harness's own and
/// per-connection commands (CONFIG, INFO, CLIENT, HELLO, PING, SELECT, a
/// SCRIPT LOAD once per connection) and what a script runs inside its one
/// EVAL round trip (GET, PEXPIRE, SETRANGE, counted apart by Redis).
#[allow(dead_code)]
pub fn data_commands(con: &mut redis::Connection) -> (u64, String) {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    let n = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter(|l| {
            ![
                "cmdstat_config",
                "cmdstat_info",
                "cmdstat_client",
                "cmdstat_hello",
                "cmdstat_ping",
                "cmdstat_select",
                "cmdstat_script",
                "cmdstat_get:",
                "cmdstat_pexpire:",
                "cmdstat_setrange:",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    (n, info)
}
