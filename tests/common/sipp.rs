//! sipp as a load generator in end-to-end tests: the caller and callee
//! scenarios of `make bench` (tests/bench/uac.xml, uas.xml), with their
//! leak checks, against one Kamailio. Both sipp processes run in their own
//! process groups and are stopped by PID.

use super::kamailio::{free_port, repo_root, scratch_dir};
use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SippLoad {
    uac: Option<Child>,
    uas: Option<Child>,
    pub dir: PathBuf,
}

/// What the caller side counted: the last line of its statistics, as
/// cumulative counters by sipp column name without the "(C)" suffix (e.g.
/// "SuccessfulCall"), and both sides' error logs for assertion messages.
pub struct SippTotals {
    pub counters: HashMap<String, u64>,
    pub errors: String,
}

impl SippTotals {
    pub fn get(&self, column: &str) -> u64 {
        self.counters.get(column).copied().unwrap_or(0)
    }
}

fn scenario(
    template: &str,
    uas_port: u16,
    uac_leak: &str,
    uas_leak: &str,
    kamailio_port: u16,
) -> String {
    let text = fs::read_to_string(repo_root().join(template)).expect("reading a sipp scenario");
    text.replace("@UASPORT@", &uas_port.to_string())
        .replace("@UACLEAK@", uac_leak)
        .replace("@UASLEAK@", uas_leak)
        .replace("@KPORT@", &kamailio_port.to_string())
}

fn spawn(args: &[String], out: PathBuf) -> Child {
    let mut cmd = Command::new("sipp");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn()
        .expect("starting sipp (make deps installs sip-tester)")
}

impl SippLoad {
    /// Starts `calls` calls at `rate` calls/s through `kamailio`. Each side
    /// fails a call whose messages show the other side's addresses.
    pub fn start(kamailio: SocketAddr, rate: u32, calls: u32) -> SippLoad {
        let dir = scratch_dir("sipp");
        let (uas_port, uac_port) = (free_port(), free_port());
        let uac_leak = format!(r"127\.0\.0\.1:{uas_port}|downstream-proxy");
        let uas_leak =
            format!(r"192\.168\.1\.100|10\.10\.10\.1|222\.211\.75\.75|127\.0\.0\.1:{uac_port}");
        for (name, template) in [
            ("uac.xml", "tests/bench/uac.xml"),
            ("uas.xml", "tests/bench/uas.xml"),
        ] {
            let text = scenario(template, uas_port, &uac_leak, &uas_leak, kamailio.port());
            fs::write(dir.join(name), text).unwrap();
        }
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let s = |v: &str| v.to_string();
        let uas = spawn(
            &[
                s("-sf"),
                path("uas.xml"),
                s("-i"),
                s("127.0.0.1"),
                s("-p"),
                uas_port.to_string(),
                s("-nostdin"),
                s("-timeout"),
                s("120s"),
                s("-trace_err"),
                s("-error_file"),
                path("uas_errors.log"),
            ],
            dir.join("uas.out"),
        );
        std::thread::sleep(Duration::from_millis(300));
        let uac = spawn(
            &[
                s("-sf"),
                path("uac.xml"),
                kamailio.to_string(),
                s("-i"),
                s("127.0.0.1"),
                s("-p"),
                uac_port.to_string(),
                s("-r"),
                rate.to_string(),
                s("-m"),
                calls.to_string(),
                s("-nostdin"),
                s("-timeout"),
                s("120s"),
                s("-trace_stat"),
                s("-fd"),
                s("1"),
                s("-stf"),
                path("uac_stat.csv"),
                s("-trace_err"),
                s("-error_file"),
                path("uac_errors.log"),
            ],
            dir.join("uac.out"),
        );
        SippLoad {
            uac: Some(uac),
            uas: Some(uas),
            dir,
        }
    }

    /// Waits (at most `within`) for the caller side to finish every call,
    /// stops the callee side, and returns the caller's totals.
    pub fn finish(mut self, within: Duration) -> SippTotals {
        let deadline = Instant::now() + within;
        if let Some(mut uac) = self.uac.take() {
            while uac.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            stop(uac);
        }
        if let Some(uas) = self.uas.take() {
            stop(uas);
        }
        let stats = fs::read_to_string(self.dir.join("uac_stat.csv")).unwrap_or_default();
        let mut lines = stats.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next().unwrap_or_default().split(';').collect();
        let last: Vec<&str> = lines.next_back().unwrap_or_default().split(';').collect();
        let counters = header
            .iter()
            .zip(last)
            .filter_map(|(h, v)| {
                let name = h.strip_suffix("(C)")?;
                Some((name.to_string(), v.trim().parse().ok()?))
            })
            .collect();
        let mut errors = String::new();
        for f in ["uac_errors.log", "uas_errors.log"] {
            let text = fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            // The first lines are enough to see what went wrong.
            errors.extend(text.lines().take(40).map(|l| format!("{f}: {l}\n")));
        }
        SippTotals { counters, errors }
    }
}

/// Ends a sipp process this test started (and its group), waiting for it.
fn stop(mut child: Child) {
    if child.try_wait().ok().flatten().is_none() {
        // SAFETY: signals the process group this test started.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    }
    let _ = child.wait();
}

impl Drop for SippLoad {
    fn drop(&mut self) {
        for c in [self.uac.take(), self.uas.take()].into_iter().flatten() {
            stop(c);
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
