//! Issue 20, end to end against the real Kamailio: sealed tokens
//! (token_mode "sealed", the default). Routing reads no store; a token
//! refused for any reason changes nothing; tokens expire unless a target
//! refresh renews them; keys rotate; the Contact stays within 300 bytes
//! with two Record-Route entries a side; two nodes that share only the key
//! file route each other's calls.

mod common;

use common::calls::{callee_request, Parties};
use common::ctl::{field, kamcmd};
use common::kamailio::{free_port, scratch_dir, Kamailio};
use common::redis::RedisServer;
use common::sip::{Call, Msg, Peer};
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROUTING: &str = "tests/cfg/routing.cfg";

/// The Contact URI of a message, without the brackets.
fn contact(m: &Msg) -> String {
    m.header("contact")
        .expect("a Contact")
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// A reply of `to` to `req`: its Vias, `rr` (the replier's side's
/// Record-Route entries, nearest to it first) above the request's own, a
/// To-tag and a Contact.
fn reply_with(to: &Peer, req: &Msg, status: &str, rr: &[String], contact: &str) {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in req.headers("via") {
        out += &format!("Via: {v}\r\n");
    }
    for r in rr {
        out += &format!("Record-Route: {r}\r\n");
    }
    for r in req.headers("record-route") {
        out += &format!("Record-Route: {r}\r\n");
    }
    out += &format!("From: {}\r\n", req.header("from").unwrap());
    let to_value = req.header("to").unwrap();
    if to_value.contains(";tag=") {
        out += &format!("To: {to_value}\r\n");
    } else {
        out += &format!("To: {to_value};tag=callee-tag\r\n");
    }
    out += &format!("Call-ID: {}\r\n", req.header("call-id").unwrap());
    out += &format!("CSeq: {}\r\n", req.header("cseq").unwrap());
    out += &format!("Contact: <{contact}>\r\nContent-Length: 0\r\n\r\n");
    to.send(req.from, &out);
}

/// Issue 20 points 3 and 4: with two Record-Route entries on each side the
/// masked Contacts stay within 300 bytes; a whole call (INVITE, 180, 200,
/// ACK, re-INVITEs from both sides, BYE) routes with no store operation at
/// all without billing, and with exactly two (the answer, the BYE) with it.
#[test]
fn a_call_with_two_record_routes_a_side_fits_300_bytes_and_routes_without_the_store() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let storage = format!("STORAGE=\"{}\"", redis.url());
    for (billing, expected) in [(false, 0), (true, 2)] {
        let defines: Vec<&str> = if billing {
            vec![&storage]
        } else {
            vec![&storage, "NO_BILLING"]
        };
        let k = Kamailio::start(ROUTING, &defines);
        let p = Parties::new();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut con)
            .unwrap();
        let id = format!("rr-2-{billing}");
        let mut call = Call::new(&id, &format!("sip:13545769997@{}", p.callee.addr));
        // The caller side's two proxies (the first is the caller itself,
        // where in-dialog requests must arrive).
        call.extra_headers = format!(
            "Record-Route: <sip:{};lr>\r\nRecord-Route: <sip:192.168.101.100:5060;lr>\r\n",
            p.caller.addr
        );
        p.caller.send(k.addr, &call.invite(&p.caller));
        let inv = p.callee.expect_request("INVITE");
        let callee_rr = vec![
            format!("<sip:{};lr>", p.callee.addr),
            "<sip:10.10.110.101:5060;lr>".to_string(),
        ];
        // The callee side's proxies: the nearest to Kamailio is listed
        // last, just above Kamailio's own entry.
        let rr: Vec<String> = callee_rr.iter().rev().cloned().collect();
        let callee_contact = format!("sip:13545769997@{}", p.callee.addr);
        reply_with(&p.callee, &inv, "180 Ringing", &rr, &callee_contact);
        p.caller.expect_reply(180, "INVITE");
        reply_with(&p.callee, &inv, "200 OK", &rr, &callee_contact);
        let ok = p.caller.expect_reply(200, "INVITE");
        // Each side sees nothing of the other side's proxies.
        for (who, m, other) in [
            ("callee", &inv, "192.168.101"),
            ("caller", &ok, "10.10.110"),
        ] {
            let uri = contact(m);
            assert!(uri.len() <= 300, "{who}: {} bytes: {uri}", uri.len());
            assert!(!m.text.contains(other), "{}", m.text);
        }
        // The caller's side sees its own proxies and Kamailio's entry,
        // which carries the callee side's route set, sealed.
        let shown = ok.values("record-route");
        assert_eq!(shown.len(), 3, "{}", ok.text);
        assert!(shown[0].contains(";tpr="), "{}", ok.text);
        call.confirm(&ok);
        p.caller.send(k.addr, &call.in_dialog(&p.caller, "ACK", 1));
        let ack = p.callee.expect_request("ACK");
        // The callee side's route set, nearest first (the first is where
        // it went).
        assert_eq!(ack.values("route"), callee_rr, "{}", ack.text);
        // A re-INVITE from each side, each answered.
        p.caller
            .send(k.addr, &call.in_dialog(&p.caller, "INVITE", 2));
        let re = p.callee.expect_request("INVITE");
        reply_with(&p.callee, &re, "200 OK", &[], &callee_contact);
        let re_ok = p.caller.expect_reply(200, "INVITE");
        // A target refresh: the remote target moves, the route set stays.
        call.remote_target = Some(contact(&re_ok));
        p.caller.send(k.addr, &call.in_dialog(&p.caller, "ACK", 2));
        p.callee.expect_request("ACK");
        p.callee.send(
            k.addr,
            &callee_request(&p, &inv, "INVITE", 1, Some(&callee_contact)),
        );
        let re = p.caller.expect_request("INVITE");
        assert_eq!(
            re.values("route"),
            vec![
                format!("<sip:{};lr>", p.caller.addr),
                "<sip:192.168.101.100:5060;lr>".to_string()
            ],
            "{}",
            re.text
        );
        p.caller.reply(&re, 200, "OK", "unused");
        p.callee.expect_reply(200, "INVITE");
        p.caller.send(k.addr, &call.in_dialog(&p.caller, "BYE", 3));
        let bye = p.callee.expect_request("BYE");
        p.callee.reply(&bye, 200, "OK", "callee-tag");
        p.caller.expect_reply(200, "BYE");
        std::thread::sleep(Duration::from_millis(300));
        let (n, info) = common::redis::data_commands(&mut con);
        assert_eq!(n, expected, "billing {billing}:\n{info}");
    }
}

/// A caller side whose token would not fit 300 bytes keeps its dialog in
/// the store, counted; the call routes all the same.
#[test]
fn a_dialog_too_large_for_a_token_is_kept_in_the_store_and_counted() {
    let ctl = scratch_dir("too-large").join("ctl.sock");
    let ctl_define = format!("CTL_SOCKET=\"unix:{}\"", ctl.display());
    let k = Kamailio::start(ROUTING, &[&ctl_define, "NO_BILLING"]);
    let p = Parties::new();
    let mut call = Call::new("too-large", &format!("sip:13545769997@{}", p.callee.addr));
    // Five more caller-side proxies than the bound allows for.
    call.extra_headers = format!("Record-Route: <sip:{};lr>\r\n", p.caller.addr)
        + &(1..=5)
            .map(|i| format!("Record-Route: <sip:proxy-{i}.caller-side.example.com:5060;lr;ftag=abcdef{i}>\r\n"))
            .collect::<String>();
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    assert!(common::sip::is_token(
        contact(&inv)
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap()
    ));
    assert_eq!(
        contact(&inv).len(),
        "sip:".len() + 65 + 1 + k.addr.to_string().len()
    );
    p.callee.reply(&inv, 200, "OK", "callee-tag");
    let ok = p.caller.expect_reply(200, "INVITE");
    call.confirm(&ok);
    let (_, stats) = kamcmd(&ctl, &["topos_rs.stats"]);
    assert_eq!(field(&stats, "dialogs_stored_too_large"), "1", "{stats}");
    let (_, records) = kamcmd(&ctl, &["topos_rs.records"]);
    assert_eq!(field(&records, "dialogs"), "1", "{records}");
    p.caller.send(k.addr, &call.in_dialog(&p.caller, "BYE", 2));
    let bye = p.callee.expect_request("BYE");
    assert_eq!(bye.vias().len(), 1);
}

/// Issue 20 point 1, expiry: a token expires dialog_expire after it was
/// made; a target refresh gives both sides fresh ones, so a call kept up by
/// re-INVITEs routes on, and one without stops routing.
#[test]
fn tokens_expire_unless_a_target_refresh_renews_them() {
    let ctl = scratch_dir("expiry").join("ctl.sock");
    let ctl_define = format!("CTL_SOCKET=\"unix:{}\"", ctl.display());
    let k = Kamailio::start(ROUTING, &[&ctl_define, "NO_BILLING", "DIALOG_EXPIRE=10"]);
    let p = Parties::new();
    let quiet_id = "quiet-call";
    let mut quiet = Call::new(quiet_id, &format!("sip:13545769997@{}", p.callee.addr));
    p.caller.send(k.addr, &quiet.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    p.callee.reply(&inv, 200, "OK", "callee-tag");
    quiet.confirm(&p.caller.expect_reply(200, "INVITE"));

    let q2 = Parties::new();
    let mut kept = Call::new("kept-call", &format!("sip:13545769997@{}", q2.callee.addr));
    q2.caller.send(k.addr, &kept.invite(&q2.caller));
    let inv2 = q2.callee.expect_request("INVITE");
    q2.callee.reply(&inv2, 200, "OK", "callee-tag");
    kept.confirm(&q2.caller.expect_reply(200, "INVITE"));

    // 6 s in: a session-timer re-INVITE of the kept call; both sides take
    // the fresh Contacts.
    std::thread::sleep(Duration::from_secs(6));
    q2.caller
        .send(k.addr, &kept.in_dialog(&q2.caller, "INVITE", 2));
    let re = q2.callee.expect_request("INVITE");
    q2.callee.reply(&re, 200, "OK", "callee-tag");
    kept.confirm(&q2.caller.expect_reply(200, "INVITE"));
    // 11 s in: the quiet call's token has expired, the kept call's not.
    std::thread::sleep(Duration::from_secs(5));
    p.caller.send(k.addr, &quiet.in_dialog(&p.caller, "BYE", 2));
    p.caller.expect_reply(404, "BYE");
    p.callee.expect_silence(Duration::from_millis(300));
    assert!(
        k.log_text()
            .contains("topos_request: refused: expired token"),
        "{}",
        k.log_text()
    );
    q2.caller
        .send(k.addr, &kept.in_dialog(&q2.caller, "BYE", 3));
    let bye = q2.callee.expect_request("BYE");
    assert_eq!(bye.vias().len(), 1);
    // The re-INVITE's fresh token for the caller works the other way too.
    let (_, stats) = kamcmd(&ctl, &["topos_rs.stats"]);
    assert_eq!(field(&stats, "token_misses"), "1", "{stats}");
}

/// Issue 20 point 1: a token used from the other side, or with another
/// Call-ID or tags, or with a changed byte, is refused and changes nothing.
#[test]
fn a_token_of_the_other_side_or_other_ids_is_refused_and_changes_nothing() {
    let ctl = scratch_dir("other-side").join("ctl.sock");
    let ctl_define = format!("CTL_SOCKET=\"unix:{}\"", ctl.display());
    let k = Kamailio::start(ROUTING, &[&ctl_define, "NO_BILLING"]);
    let p = Parties::new();
    let mut call = Call::new("victim", &format!("sip:13545769997@{}", p.callee.addr));
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    p.callee.reply(&inv, 200, "OK", "callee-tag");
    call.confirm(&p.caller.expect_reply(200, "INVITE"));
    // The callee side uses the token the caller got (it addresses the
    // callee): From and To the callee's way round.
    let mut from_callee = call.clone();
    from_callee.from_tag = "callee-tag".into();
    from_callee.to_tag = Some(call.from_tag.clone());
    // Another Call-ID, another caller tag, another callee tag.
    let mut other_id = call.clone();
    other_id.call_id = "victim-2".into();
    let mut other_from = call.clone();
    other_from.from_tag = "someone-else".into();
    let mut other_to = call.clone();
    other_to.to_tag = Some("another-callee".into());
    for (i, c) in [from_callee, other_id, other_from, other_to]
        .iter()
        .enumerate()
    {
        p.caller
            .send(k.addr, &c.in_dialog(&p.caller, "BYE", 10 + i as u32));
        p.caller.expect_reply(404, "BYE");
    }
    p.callee.expect_silence(Duration::from_millis(300));
    let (_, stats) = kamcmd(&ctl, &["topos_rs.stats"]);
    assert_eq!(field(&stats, "token_misses"), "4", "{stats}");
    // The call is untouched: its BYE routes.
    p.caller.send(k.addr, &call.in_dialog(&p.caller, "BYE", 20));
    assert_eq!(p.callee.expect_request("BYE").vias().len(), 1);
}

/// Tokens never spell `CSeq`: sipp (and any peer that finds the CSeq by a
/// substring search of the whole message) matched a reply by the first
/// `CSeq` in it, and failed about one call in 10,000 on a token that
/// spelled it (found by `make bench`). Their text has no `C` at all: ten
/// calls with `mask_callid` carry nearly 3,000 token characters (caller
/// and callee tokens, the route parameter, the masked Call-ID), which
/// base64url would fill with `C`s; every message each side receives holds
/// `CSeq` exactly once, in its CSeq header.
#[test]
fn no_token_spells_cseq_for_peers_that_search_the_message() {
    let k = Kamailio::start(ROUTING, &["NO_BILLING", "MASK_CALLID"]);
    let p = Parties::new();
    let mut token_text = String::new();
    let mut received = Vec::new();
    for i in 0..10 {
        let mut call = Call::new(
            &format!("cseq-{i}"),
            &format!("sip:13545769997@{}", p.callee.addr),
        );
        p.caller.send(k.addr, &call.invite(&p.caller));
        let inv = p.callee.expect_request("INVITE");
        token_text += &user_of(&contact(&inv));
        token_text += inv.header("call-id").unwrap().trim_start_matches("tps1");
        // A proxy on the callee's side (the callee itself, on loopback):
        // the route set toward the callee rides in the route parameter.
        let proxy = format!("<sip:{};lr>", p.callee.addr);
        let own = format!("sip:b@{}", p.callee.addr);
        reply_with(&p.callee, &inv, "200 OK", &[proxy], &own);
        let ok = p.caller.expect_reply(200, "INVITE");
        token_text += &user_of(&contact(&ok));
        let tpr = ok
            .headers("record-route")
            .iter()
            .find_map(|r| {
                r.split(";tpr=")
                    .nth(1)
                    .map(|t| t.split([';', '>']).next().unwrap().to_string())
            })
            .expect("the route parameter in Kamailio's Record-Route");
        token_text += &tpr;
        call.confirm(&ok);
        p.caller.send(k.addr, &call.in_dialog(&p.caller, "BYE", 2));
        let bye = p.callee.expect_request("BYE");
        p.callee.reply(&bye, 200, "OK", "callee-tag");
        let bye_ok = p.caller.expect_reply(200, "BYE");
        received.extend([inv, ok, bye, bye_ok]);
    }
    assert!(token_text.len() > 2500, "{token_text}");
    assert!(!token_text.contains('C'), "{token_text}");
    for m in &received {
        assert_eq!(m.text.matches("CSeq").count(), 1, "{}", m.text);
    }
}

/// The user part of a SIP URI.
fn user_of(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    rest.split('@').next().unwrap_or_default().to_string()
}

/// A key file of the given keys (hex lines).
fn key_file(path: &Path, keys: &[&str]) {
    std::fs::write(
        path,
        keys.iter().map(|k| format!("{k}\n")).collect::<String>(),
    )
    .unwrap();
}

fn key(c: char) -> String {
    c.to_string().repeat(64)
}

/// Issue 20 point 2: the first key seals, every key opens; keys_reload
/// takes a good file and refuses a bad one (the keys in use stay); a bad
/// file at start-up stops Kamailio with the line, never the key.
#[test]
fn keys_rotate_and_reload_and_bad_files_are_refused() {
    let dir = scratch_dir("keys");
    let keys = dir.join("topos_rs.keys");
    let ctl = dir.join("ctl.sock");
    let (k1, k2) = (key('1'), key('2'));
    key_file(&keys, &[&k1]);
    let defines = [
        format!("TOKEN_KEY_FILE=\"{}\"", keys.display()),
        format!("CTL_SOCKET=\"unix:{}\"", ctl.display()),
        "NO_BILLING".to_string(),
    ];
    let refs: Vec<&str> = defines.iter().map(String::as_str).collect();
    let k = Kamailio::start(ROUTING, &refs);
    let p = Parties::new();
    let answered = |id: &str| {
        let mut call = Call::new(id, &format!("sip:13545769997@{}", p.callee.addr));
        p.caller.send(k.addr, &call.invite(&p.caller));
        let inv = p.callee.expect_request("INVITE");
        p.callee.reply(&inv, 200, "OK", "callee-tag");
        call.confirm(&p.caller.expect_reply(200, "INVITE"));
        call
    };
    let routes = |call: &Call, cseq: u32| {
        p.caller
            .send(k.addr, &call.in_dialog(&p.caller, "INFO", cseq));
        let info = p.callee.expect_request("INFO");
        p.callee.reply(&info, 200, "OK", "callee-tag");
        p.caller.expect_reply(200, "INFO");
    };
    let refused = |call: &Call, cseq: u32| {
        p.caller
            .send(k.addr, &call.in_dialog(&p.caller, "INFO", cseq));
        p.caller.expect_reply(404, "INFO");
    };
    let old = answered("sealed-with-k1");
    // Rotation: the new key first, the old one still opens.
    key_file(&keys, &[&k2, &k1]);
    let (ok, out) = kamcmd(&ctl, &["topos_rs.keys_reload"]);
    assert!(
        ok && out.contains("token keys reloaded: 2 (the first seals)"),
        "{out}"
    );
    routes(&old, 2);
    let new = answered("sealed-with-k2");
    routes(&new, 2);
    // A bad file: refused with its line, the keys in use stay.
    std::fs::write(&keys, format!("{k2}\n{}\n", &k1[..40])).unwrap();
    let (ok, out) = kamcmd(&ctl, &["topos_rs.keys_reload"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "{} line 2: a key is 64 hex digits",
            keys.display()
        )),
        "{out}"
    );
    assert!(!out.contains(&k1[..16]), "{out}");
    routes(&old, 3);
    routes(&new, 3);
    // The old key dropped: what it sealed no longer opens.
    key_file(&keys, &[&k2]);
    let (ok, out) = kamcmd(&ctl, &["topos_rs.keys_reload"]);
    assert!(ok, "{out}");
    refused(&old, 4);
    routes(&new, 4);

    // Start-up with a bad file stops with a clear line.
    let bad = dir.join("bad.keys");
    std::fs::write(&bad, "not a key\n").unwrap();
    let log = start_expecting_failure(&[&format!("TOKEN_KEY_FILE=\"{}\"", bad.display())]);
    assert!(
        log.contains(&format!(
            "modparam \"token_key_file\": {} line 1: a key is 64 hex digits",
            bad.display()
        )),
        "{log}"
    );
}

/// Starts Kamailio expecting it to stop during start-up; its log.
fn start_expecting_failure(defines: &[&str]) -> String {
    let dir = scratch_dir("keys-fail");
    let log = dir.join("kamailio.log");
    let status = std::process::Command::new(common::kamailio::kamailio_bin())
        .args(["-DD", "-E", "-f"])
        .arg(common::kamailio::repo_root().join(ROUTING))
        .arg("-L")
        .arg(common::kamailio::module_path())
        .arg("-Y")
        .arg(&dir)
        .args(["-A", &format!("LISTEN=udp:127.0.0.1:{}", free_port())])
        .args(defines.iter().flat_map(|d| ["-A", d]))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .expect("running kamailio");
    assert!(!status.success());
    std::fs::read_to_string(log).unwrap()
}

/// Without token_key_file the module makes a key in its runtime directory,
/// readable by its owner only, and keeps it across a restart: a call set up
/// before the restart routes after it.
#[test]
fn the_default_key_is_made_0600_and_kept_across_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let dir: PathBuf = scratch_dir("default-key");
    let port = free_port();
    let mut k = Kamailio::start_on(ROUTING, &["NO_BILLING"], dir.clone(), port);
    let file = dir.join("topos_rs.keys");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(!k.log_text().contains(text.trim()), "the key is in the log");
    let p = Parties::new();
    let mut call = Call::new("restart-key", &format!("sip:13545769997@{}", p.callee.addr));
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    p.callee.reply(&inv, 200, "OK", "callee-tag");
    call.confirm(&p.caller.expect_reply(200, "INVITE"));
    k.stop();
    let k = Kamailio::start_on(ROUTING, &["NO_BILLING"], dir.clone(), port);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    p.caller.send(k.addr, &call.in_dialog(&p.caller, "BYE", 2));
    assert_eq!(p.callee.expect_request("BYE").vias().len(), 1);
    drop(k);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 20 point 6: two nodes with the same key file and no shared store
/// (each its own LMDB), both advertising one address (a virtual IP): each
/// routes the in-dialog requests of dialogs the other set up, both ways.
#[test]
fn two_nodes_sharing_only_the_key_file_route_each_others_calls() {
    let keys = scratch_dir("vip-keys").join("topos_rs.keys");
    key_file(&keys, &[&key('7')]);
    let key_define = format!("TOKEN_KEY_FILE=\"{}\"", keys.display());
    let vip = "127.0.0.100:5060";
    // What a node behind a virtual address is configured with: the address
    // in Via and Record-Route, and as the masked Contacts' host.
    let node = [
        key_define.as_str(),
        "ADVERTISE_ADDRESS=\"127.0.0.100\"",
        "ADVERTISE_PORT=5060",
        "CONTACT_HOST=\"127.0.0.100:5060\"",
        "NO_BILLING",
    ];
    let a = Kamailio::start(ROUTING, &node);
    let b = Kamailio::start(ROUTING, &node);
    for (setup, other) in [(&a, &b), (&b, &a)] {
        let p = Parties::new();
        let id = format!("vip-{}", setup.addr.port());
        let mut call = Call::new(&id, &format!("sip:13545769997@{}", p.callee.addr));
        p.caller.send(setup.addr, &call.invite(&p.caller));
        let inv = p.callee.expect_request("INVITE");
        // Both sides see only the virtual address.
        assert!(contact(&inv).ends_with(&format!("@{vip}")), "{}", inv.text);
        p.callee.reply(&inv, 200, "OK", "callee-tag");
        let ok = p.caller.expect_reply(200, "INVITE");
        assert!(contact(&ok).ends_with(&format!("@{vip}")), "{}", ok.text);
        call.confirm(&ok);
        // The virtual address moved to the other node: every in-dialog
        // request reaches that one.
        p.caller
            .send(other.addr, &call.in_dialog(&p.caller, "ACK", 1));
        assert_eq!(p.callee.expect_request("ACK").vias().len(), 1);
        p.caller
            .send(other.addr, &call.in_dialog(&p.caller, "INFO", 2));
        let info = p.callee.expect_request("INFO");
        p.callee.reply(&info, 200, "OK", "callee-tag");
        p.caller.expect_reply(200, "INFO");
        // From the callee side too.
        let from_callee = callee_request(&p, &inv, "BYE", 1, None);
        p.callee.send(other.addr, &from_callee);
        let bye = p.caller.expect_request("BYE");
        assert_eq!(bye.vias().len(), 1);
        assert_eq!(
            bye.first_line(),
            format!("BYE sip:01089672389@{} SIP/2.0", p.caller.addr)
        );
        p.caller.reply(&bye, 200, "OK", "unused");
        p.callee.expect_reply(200, "BYE");
    }
}
