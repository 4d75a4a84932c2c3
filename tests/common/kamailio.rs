//! A real `kamailio` process for a test: the built topos_rs.so, a config
//! file, a free loopback port, its own runtime directory and log file. It is
//! stopped (by PID, SIGTERM, then SIGKILL of its own process group) when
//! dropped, and its log is printed if the test failed.

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding the built module (`make build` puts it there).
pub fn module_dir() -> PathBuf {
    let dir = std::env::var_os("TOPOS_RS_MODULE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release"));
    assert!(
        dir.join("topos_rs.so").exists(),
        "{}/topos_rs.so is missing: run `make build` (or `make test`) first",
        dir.display()
    );
    dir
}

/// The `kamailio` binary under test: `$KAMAILIO_BIN` (e.g. a Kamailio 6.0
/// built by `make test-kamailio6`), else `kamailio` from PATH.
pub fn kamailio_bin() -> std::ffi::OsString {
    std::env::var_os("KAMAILIO_BIN").unwrap_or_else(|| "kamailio".into())
}

/// The `kamcmd` matching `kamailio_bin()`: `$KAMCMD_BIN`, else from PATH.
pub fn kamcmd_bin() -> std::ffi::OsString {
    std::env::var_os("KAMCMD_BIN").unwrap_or_else(|| "kamcmd".into())
}

/// Kamailio's own module directory (tm.so, sl.so, ...).
pub fn system_module_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KAMAILIO_MODULES") {
        return PathBuf::from(d);
    }
    for lib in fs::read_dir("/usr/lib").expect("/usr/lib").flatten() {
        let d = lib.path().join("kamailio/modules");
        if d.join("tm.so").exists() {
            return d;
        }
    }
    panic!("no Kamailio module directory with tm.so under /usr/lib/*/kamailio/modules");
}

/// `-L` value: our module first, then Kamailio's.
pub fn module_path() -> String {
    format!(
        "{}:{}",
        module_dir().display(),
        system_module_dir().display()
    )
}

/// A loopback UDP port nobody uses right now.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("binding a free loopback port")
}

/// A loopback TCP port nobody listens on right now.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("binding a free loopback TCP port")
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Removes the scratch directories of test processes that have ended.
/// A passing test removes what it owns; directories kept on purpose (a
/// restart test's store, a failed test's logs) stay until the next run.
fn remove_stale_scratch_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("topos-rs-test-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// A fresh scratch directory for one Kamailio instance.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static CLEANUP: std::sync::Once = std::sync::Once::new();
    CLEANUP.call_once(remove_stale_scratch_dirs);
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "topos-rs-test-{}-{}-{}",
        std::process::id(),
        tag,
        n
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

pub struct Kamailio {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub log: PathBuf,
    pub dir: PathBuf,
    /// Remove `dir` when dropped after a passing test.
    owns_dir: bool,
}

impl Kamailio {
    /// Starts `cfg` (relative to the repository) with extra `-A` defines and
    /// waits until it answers OPTIONS.
    pub fn start(cfg: &str, defines: &[&str]) -> Kamailio {
        let mut k = Self::start_in(cfg, defines, scratch_dir("kamailio"));
        k.owns_dir = true;
        k
    }

    /// As `start`, with `dir` as Kamailio's runtime directory (-Y), which
    /// also holds the default LMDB store; the directory is kept on drop.
    pub fn start_in(cfg: &str, defines: &[&str], dir: PathBuf) -> Kamailio {
        // A port found free can be taken by another test before Kamailio
        // binds it: then start again on another one.
        for _ in 0..3 {
            let mut k = Self::spawn(cfg, defines, dir.clone(), free_port());
            if k.wait_ready() {
                return k;
            }
            if !k.log_text().contains("Address already in use") {
                k.not_ready();
            }
        }
        panic!("kamailio found no free UDP port in 3 attempts");
    }

    /// As `start_in`, on a given UDP port (to restart "the same" server).
    pub fn start_on(cfg: &str, defines: &[&str], dir: PathBuf, port: u16) -> Kamailio {
        let mut k = Self::spawn(cfg, defines, dir, port);
        if !k.wait_ready() {
            k.not_ready();
        }
        k
    }

    fn spawn(cfg: &str, defines: &[&str], dir: PathBuf, port: u16) -> Kamailio {
        let log = dir.join(format!("kamailio-{port}.log"));
        let mut cmd = Command::new(kamailio_bin());
        cmd.arg("-DD")
            .arg("-E")
            .arg("-f")
            .arg(repo_root().join(cfg))
            .arg("-L")
            .arg(module_path())
            .arg("-Y")
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-m")
            .arg("64")
            .arg("-M")
            .arg("8")
            .arg("-A")
            .arg(format!("LISTEN=udp:127.0.0.1:{port}"));
        for d in defines {
            cmd.arg("-A").arg(d);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        // Its own process group, so the children can be stopped with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("starting kamailio");
        Kamailio {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            dir,
            owns_dir: false,
        }
    }

    /// True once Kamailio answers OPTIONS (within 10 s).
    fn wait_ready(&mut self) -> bool {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        let mut n = 0;
        while Instant::now() < deadline {
            // Kamailio exits at once on a configuration or bind error.
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                return false;
            }
            n += 1;
            let local = probe.local_addr().unwrap();
            let options = format!(
                "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKready{n}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=r{n}\r\nTo: <sip:{}>\r\n\
                 Call-ID: ready-{n}@test\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n",
                self.addr, self.addr
            );
            let _ = probe.send_to(options.as_bytes(), self.addr);
            if let Ok((len, _)) = probe.recv_from(&mut buf) {
                if buf[..len].starts_with(b"SIP/2.0 200") {
                    return true;
                }
            }
        }
        false
    }

    fn not_ready(&self) -> ! {
        panic!(
            "kamailio did not answer OPTIONS on {} (exited, or not within 10 s); log:\n{}",
            self.addr,
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops Kamailio and waits for it; returns its log.
    pub fn stop(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            // SAFETY: signals the process (group) this test started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    // SAFETY: as above, the group of the process we started.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Children left behind by a crash: end the group.
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        self.log_text()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let log = self.stop();
        if std::thread::panicking() {
            eprintln!("===== kamailio log ({}) =====\n{log}", self.log.display());
        } else if self.owns_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Stops a process this test started (its own process group): SIGTERM,
/// up to `grace` to exit, then SIGKILL of the group.
pub fn stop_process_group(child: &mut Child, grace: Duration) {
    let pid = child.id() as i32;
    // SAFETY: signals the process (group) this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.wait();
}
