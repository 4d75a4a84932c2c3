//! linphone (Debian's linphone-cli: linphonec 5.1) as a headless UDP
//! callee: auto-answer, wav files instead of a sound card, controlled
//! through linphonecsh (one linphonec per user: the tests run one at a
//! time). It is here because it sends some replies (180, 200 to BYE, 503)
//! without Content-Length, which is legal on UDP.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Linphone {
    pub sip_port: u16,
    child: Option<Child>,
}

fn sh(args: &[&str]) -> String {
    let out = Command::new("linphonecsh")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running linphonecsh (package linphone-cli)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

impl Linphone {
    pub fn start(ip: &'static str, sip_port: u16, user: &str, dir: &Path) -> Linphone {
        let home = dir.join("linphone-home");
        fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
        let rc = dir.join("linphonerc");
        fs::write(
            &rc,
            format!(
                "[sip]\nsip_port={sip_port}\nsip_tcp_port=-1\nsip_tls_port=-1\n\
                 bind_address={ip}\ncontact=sip:{user}@{ip}:{sip_port}\nguess_hostname=0\n\
                 register_only_when_network_is_up=0\n\
                 [rtp]\naudio_rtp_port={}\n[video]\nenabled=0\ncapture=0\ndisplay=0\n",
                30000 + sip_port % 10000
            ),
        )
        .unwrap();
        let log = dir.join("linphone.log");
        // What `linphonecsh init` runs, as our own child.
        let mut cmd = Command::new("linphonec");
        cmd.arg("--pipe")
            .arg("-c")
            .arg(&rc)
            .arg("-a")
            .args(["-d", "6", "-l"])
            .arg(&log)
            .env("HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .expect("starting linphonec (package linphone-cli; `make deps` installs it)");
        let mut l = Linphone {
            sip_port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // linphonec 5.1 ignores sip_port from the file here; the
            // command sets it (and binds bind_address).
            let r = sh(&["generic", &format!("ports sip {sip_port}")]);
            if r.contains("Setting sip port") {
                break;
            }
            if Instant::now() > deadline {
                l.stop();
                panic!("linphonec did not take commands within 10 s: {r}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // linphonecsh talks to the one linphonec of this user: it must be
        // ours (alive), and ours must have bound the SIP port.
        if let Some(Ok(Some(st))) = l.child.as_mut().map(Child::try_wait) {
            panic!(
                "linphonec exited ({st}): is another linphonec of this user running? \
                 (linphonecsh reaches one per user)"
            );
        }
        let taken = std::net::UdpSocket::bind((ip, sip_port)).is_err();
        assert!(taken, "linphonec did not bind {ip}:{sip_port}");
        let r = sh(&["generic", "soundcard use files"]);
        assert!(r.contains("files"), "linphonec: soundcard use files: {r}");
        l
    }

    fn state(&self) -> String {
        sh(&["generic", "calls"])
    }

    /// Runs a linphonec command (`calls`, `transfer 1 --to-call 2`, ...)
    /// and returns what it printed (tests/transfer.rs).
    #[allow(dead_code)]
    pub fn command(&self, command: &str) -> String {
        sh(&["generic", command])
    }

    /// Waits until linphone has a call in StreamsRunning.
    pub fn established(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.state().contains("StreamsRunning") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Waits until linphone has no call left.
    pub fn closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.state().contains("No active call") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn hangup(&self) -> Result<String, String> {
        let r = sh(&["generic", "terminate"]);
        if r.contains("ended") || r.contains("terminat") {
            Ok(r)
        } else {
            Err(format!("linphone: terminate: {r}"))
        }
    }

    pub fn describe(&self) -> String {
        self.state().trim().replace('\n', " | ")
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::common::kamailio::stop_process_group(&mut c, Duration::from_secs(3));
        }
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        self.stop();
    }
}
