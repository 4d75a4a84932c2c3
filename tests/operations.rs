//! Operating the module like any Kamailio module: RPC through kamcmd, KEMI
//! routing in Lua, and the Debian package.

mod common;

use common::ctl::{field, kamcmd};
use common::kamailio::{repo_root, scratch_dir, Kamailio};
use common::sip::{requirement_vias, Call, Msg, Peer};
use std::process::Command;
use std::time::{Duration, Instant};

const ROUTING: &str = "tests/cfg/routing.cfg";

/// A whole call (INVITE, 200, ACK, ~1 s, BYE) through `k`.
fn call(k: &Kamailio, caller: &Peer, callee: &Peer, call_id: &str, user: &str) -> Msg {
    let mut c = Call::new(call_id, &format!("sip:{user}@{}", callee.addr));
    c.upstream_vias = requirement_vias();
    caller.send(k.addr, &c.invite(caller));
    let inv = callee.expect_request("INVITE");
    callee.reply(&inv, 200, "OK", "t1");
    let ok = caller.expect_reply(200, "INVITE");
    c.confirm(&ok);
    caller.send(k.addr, &c.in_dialog(caller, "ACK", 1));
    callee.expect_request("ACK");
    std::thread::sleep(Duration::from_millis(1100));
    caller.send(k.addr, &c.in_dialog(caller, "BYE", 2));
    let bye = callee.expect_request("BYE");
    callee.reply(&bye, 200, "OK", "t1");
    caller.expect_reply(200, "BYE");
    inv
}

fn wait_log(k: &Kamailio, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if k.log_text().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn kamcmd_stats_dialog_and_rates_reload() {
    let dir = scratch_dir("rpc");
    let socket = dir.join("ctl.sock");
    let rates = dir.join("rates.csv");
    std::fs::write(&rates, "prefix,rate\n135,0.10\n").unwrap();
    let k = Kamailio::start(
        ROUTING,
        &[
            &format!("CTL_SOCKET=\"unix:{}\"", socket.display()),
            &format!("BILLING_RATES=\"{}\"", rates.display()),
            // topos_rs.dialog shows stored dialogs (sealed ones have no record).
            "TOKEN_MODE=\"stored\"",
        ],
    );
    let (ok, before) = kamcmd(&socket, &["topos_rs.stats"]);
    assert!(ok, "{before}");
    assert_eq!(field(&before, "calls_billed"), "0");
    assert_eq!(field(&before, "dialogs_created"), "0");
    let (ok, records) = kamcmd(&socket, &["topos_rs.records"]);
    assert!(ok, "{records}");
    assert_eq!(field(&records, "dialogs"), "0", "{records}");

    let (caller, callee) = (Peer::new(), Peer::new());
    call(&k, &caller, &callee, "rpc-call-1", "13545769997");
    assert!(wait_log(&k, "Call-ID: rpc-call-1,"));

    let (ok, after) = kamcmd(&socket, &["topos_rs.stats"]);
    assert!(ok, "{after}");
    eprintln!("kamcmd topos_rs.stats after one call:\n{after}");
    assert!(
        field(&after, "requests_hidden").parse::<u32>().unwrap() >= 3,
        "{after}"
    );
    assert!(
        field(&after, "replies_restored").parse::<u32>().unwrap() >= 2,
        "{after}"
    );
    assert_eq!(field(&after, "dialogs_created"), "1");
    assert_eq!(field(&after, "dialogs_ended"), "1");
    assert_eq!(field(&after, "dialogs_active"), "0");
    assert_eq!(field(&after, "calls_billed"), "1");
    assert_eq!(field(&after, "billed_total"), "0.10 元");
    assert_eq!(field(&after, "token_misses"), "0");

    // The ended call's dialog stays for its grace time; its bill is gone.
    let (ok, records) = kamcmd(&socket, &["topos_rs.records"]);
    assert!(ok, "{records}");
    assert_eq!(field(&records, "dialogs"), "1", "{records}");
    assert_eq!(field(&records, "bills"), "0", "{records}");

    // The stored dialog, addresses included.
    let (ok, d) = kamcmd(&socket, &["topos_rs.dialog", "rpc-call-1"]);
    assert!(ok, "{d}");
    assert_eq!(field(&d, "call_id"), "rpc-call-1");
    assert_eq!(field(&d, "state"), "ended");
    assert_eq!(
        field(&d, "caller_contact"),
        format!("sip:01089672389@{}", caller.addr)
    );
    assert_eq!(
        field(&d, "callee_contact"),
        format!("sip:callee@{}", callee.addr)
    );
    let (ok, none) = kamcmd(&socket, &["topos_rs.dialog", "no-such-call"]);
    assert!(
        !ok && none.contains("no dialog with Call-ID no-such-call"),
        "{none}"
    );

    // A good file is taken...
    std::fs::write(&rates, "prefix,rate\n135,0.20\n").unwrap();
    let (ok, r) = kamcmd(&socket, &["topos_rs.rates_reload"]);
    assert!(ok && r.contains("rates reloaded: 1 prefixes"), "{r}");
    call(&k, &caller, &callee, "rpc-call-2", "13545769997");
    assert!(wait_log(
        &k,
        "Call-ID: rpc-call-2, From: 01089672389, To: 13545769997, Duration: 1 sec, Cost: 0.20 元"
    ));
    // ...a bad one is refused and the table stays.
    std::fs::write(&rates, "prefix,rate\n135,twenty\n").unwrap();
    let (ok, r) = kamcmd(&socket, &["topos_rs.rates_reload"]);
    assert!(!ok, "{r}");
    assert!(r.contains("line 2"), "{r}");
    call(&k, &caller, &callee, "rpc-call-3", "13545769997");
    assert!(wait_log(
        &k,
        "Call-ID: rpc-call-3, From: 01089672389, To: 13545769997, Duration: 1 sec, Cost: 0.20 元"
    ));
}

#[test]
fn kemi_lua_routing_hides_and_bills() {
    let script = repo_root().join("tests/lua/routing.lua");
    let k = Kamailio::start(
        "tests/cfg/kemi-lua.cfg",
        &[&format!("LUA_SCRIPT=\"{}\"", script.display())],
    );
    let (caller, callee) = (Peer::new(), Peer::new());
    let mut c = Call::new("kemi-call-1", &format!("sip:13545769997@{}", callee.addr));
    c.upstream_vias = requirement_vias();
    caller.send(k.addr, &c.invite(&caller));
    let inv = callee.expect_request("INVITE");
    assert_eq!(inv.vias().len(), 1, "{}", inv.text);
    assert!(inv.vias()[0].starts_with(&format!("SIP/2.0/UDP {};branch=", k.addr)));
    for leak in [
        "192.168.1.100",
        "10.10.10.1",
        "222.211.75.75",
        &caller.port().to_string(),
    ] {
        assert!(!inv.text.contains(leak), "{leak} leaked:\n{}", inv.text);
    }
    callee.reply(&inv, 200, "OK", "t1");
    let ok = caller.expect_reply(200, "INVITE");
    assert_eq!(ok.vias().len(), 4, "{}", ok.text);
    assert!(
        !ok.text.contains(&format!(":{}", callee.port())),
        "{}",
        ok.text
    );
    c.confirm(&ok);
    caller.send(k.addr, &c.in_dialog(&caller, "ACK", 1));
    assert_eq!(callee.expect_request("ACK").vias().len(), 1);
    std::thread::sleep(Duration::from_millis(1100));
    caller.send(k.addr, &c.in_dialog(&caller, "BYE", 2));
    let bye = callee.expect_request("BYE");
    assert_eq!(bye.vias().len(), 1);
    callee.reply(&bye, 200, "OK", "t1");
    caller.expect_reply(200, "BYE");
    assert!(wait_log(
        &k,
        "CALL BILLING - Call-ID: kemi-call-1, From: 01089672389, To: 13545769997, Duration: 1 sec, Cost: 0.05 元"
    ), "{}", k.log_text());
}

/// `make deb`, then the package as dpkg sees it; installed with `dpkg -i`
/// (the tests run as root), checked with `kamailio -c` on a config that
/// only loads the module by name, then removed again.
#[test]
fn debian_package_installs_and_loads_by_name() {
    if std::env::var_os("KAMAILIO_BIN").is_some() {
        // The package is built for, and installed next to, the distro's
        // kamailio package; a Kamailio given by KAMAILIO_BIN is not one
        // (`make deb-trixie` tests the Debian 13 package in a Debian 13 root).
        eprintln!("skipped: KAMAILIO_BIN is set, this host's kamailio package is not under test");
        return;
    }
    let root = repo_root();
    let out = Command::new("make")
        .arg("-C")
        .arg(&root)
        .arg("deb")
        .output()
        .expect("running make deb");
    assert!(
        out.status.success(),
        "make deb failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = std::fs::read_dir(root.join("target/debian"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("kamailio-topos-rs-modules_") && n.ends_with(".deb")
        })
        .expect("no .deb in target/debian");
    let dpkg_deb = |args: &[&str]| -> String {
        let o = Command::new("dpkg-deb")
            .args(args)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let system_dir = common::kamailio::system_module_dir();
    let listing = dpkg_deb(&["-c"]);
    assert!(
        listing.contains(&format!(".{}/topos_rs.so", system_dir.display())),
        "{listing}"
    );
    assert!(listing.contains("./usr/share/doc/kamailio-topos-rs-modules/README.md"));
    assert!(listing.contains("./usr/share/doc/kamailio-topos-rs-modules/cfg-examples/kamailio.cfg"));
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "kamailio"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&installed.stdout).into_owned();
    assert_eq!(
        dpkg_deb(&["-f"])
            .lines()
            .find(|l| l.starts_with("Depends:"))
            .unwrap()
            .trim(),
        format!("Depends: kamailio (= {version})")
    );

    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "this test installs the package: run it as root");
    let install = Command::new("dpkg").arg("-i").arg(&deb).output().unwrap();
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let dir = scratch_dir("deb");
    let cfg = dir.join("kamailio.cfg");
    std::fs::write(
        &cfg,
        "#!KAMAILIO\nloadmodule \"topos_rs.so\"\nrequest_route { drop; }\n",
    )
    .unwrap();
    // No -L: Kamailio's default module path, where the package put it.
    let check = Command::new("kamailio")
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stderr).into_owned()
        + &String::from_utf8_lossy(&check.stdout);
    let _ = Command::new("dpkg")
        .args(["-r", "kamailio-topos-rs-modules"])
        .output();
    assert!(
        check.status.success() && text.contains("config file ok"),
        "{text}"
    );
}
