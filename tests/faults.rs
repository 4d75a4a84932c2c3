//! Redis failing under load: frozen, then stopped and restarted, while sipp
//! calls run through Kamailio with topos_rs on Redis. Workers never wait
//! longer than `redis_timeout`, new calls are refused at once while Redis
//! is down, traffic recovers without restarting Kamailio, and calls answered
//! before the outage are still routed and billed when they hang up after it.

mod common;

use common::calls::{answer, caller_bye, Parties};
use common::kamailio::{free_tcp_port, scratch_dir, Kamailio};
use common::redis::RedisServer;
use common::sip::Call;
use common::sipp::SippLoad;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const ROUTING: &str = "tests/cfg/routing.cfg";
/// topos_rs's default `redis_timeout`.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// The caller hangs up; returns the X-Billed header the callee got.
fn hang_up(k: &Kamailio, p: &Parties, call: &Call) -> String {
    let (_, bye) = caller_bye(k, p, call);
    bye.header("x-billed").unwrap_or_default()
}

/// OPTIONS round trips to `k` for `d`, one every 20 ms: the longest one
/// (Kamailio's workers share the socket, so a stalled worker shows here).
fn worst_options_round_trip(k: SocketAddr, d: Duration) -> Duration {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let end = Instant::now() + d;
    let mut worst = Duration::ZERO;
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while Instant::now() < end {
        n += 1;
        let options = format!(
            "OPTIONS sip:{k} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p{n}\r\nTo: <sip:{k}>\r\n\
             Call-ID: probe-{n}@test\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let sent = Instant::now();
        sock.send_to(options.as_bytes(), k).unwrap();
        loop {
            let (len, _) = sock
                .recv_from(&mut buf)
                .expect("Kamailio did not answer OPTIONS within 5 s");
            let text = String::from_utf8_lossy(&buf[..len]);
            if text.contains(&format!("probe-{n}@test")) {
                break;
            }
        }
        worst = worst.max(sent.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    worst
}

/// One whole call through `k` (INVITE, 200, ACK, BYE), each step within
/// a second; false at the first step that does not happen.
fn try_a_call(k: &Kamailio, p: &Parties, call_id: &str) -> bool {
    let second = Duration::from_secs(1);
    let mut call = Call::new(call_id, &format!("sip:13545769997@{}", p.callee.addr));
    p.caller.send(k.addr, &call.invite(&p.caller));
    let Some(inv) = p
        .callee
        .recv_within(second)
        .filter(|m| m.method() == Some("INVITE"))
    else {
        return false;
    };
    p.callee.reply(&inv, 200, "OK", "callee-tag");
    let ok = loop {
        match p.caller.recv_within(second) {
            Some(m) if m.status() == Some(200) => break m,
            Some(m) if m.status().is_some_and(|s| s < 200) => continue,
            _ => return false,
        }
    };
    call.confirm(&ok);
    p.caller.send(k.addr, &call.in_dialog(&p.caller, "ACK", 1));
    if p.callee
        .recv_within(second)
        .and_then(|m| m.method().map(str::to_string))
        != Some("ACK".into())
    {
        return false;
    }
    hang_up(k, p, &call);
    true
}

/// New calls through `k` until one completes (bounded): Kamailio recovered
/// by itself. Returns how many attempts it took.
fn wait_for_a_complete_call(k: &Kamailio, p: &Parties, tag: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(15);
    for attempt in 1.. {
        if try_a_call(k, p, &format!("{tag}-{attempt}")) {
            return attempt;
        }
        assert!(Instant::now() < deadline, "Kamailio never recovered");
        // Whatever that attempt left in flight is not the next one's.
        while p.caller.recv_within(Duration::from_millis(300)).is_some() {}
        while p.callee.recv_within(Duration::from_millis(50)).is_some() {}
    }
    unreachable!()
}

#[test]
fn redis_outage_under_sipp_load() {
    let data = scratch_dir("redis-data");
    let port = free_tcp_port();
    let mut redis = RedisServer::start_durable(port, &data);
    let storage = format!("STORAGE=\"redis://127.0.0.1:{port}/0\"");
    // Stored tokens: every in-dialog request needs Redis (sealed tokens
    // need it only to bill: tests/sealed_tokens.rs).
    let k = Kamailio::start(ROUTING, &[&storage, "TOKEN_MODE=\"stored\""]);
    let p = Parties::new();

    // Three calls answered before the outage, hung up after it.
    let answered: Vec<Call> = (0..3)
        .map(|i| answer(&k, &p, &format!("answered-before-{i}")).0)
        .collect();

    // 600 calls at 40/s (15 s) run through everything below.
    let load = SippLoad::start(k.addr, 40, 600);
    std::thread::sleep(Duration::from_secs(2));

    // Redis frozen: it accepts connections and answers nothing. Every
    // worker gives up after redis_timeout, so no one waits much longer.
    redis.freeze();
    let worst_frozen = worst_options_round_trip(k.addr, Duration::from_secs(2));
    redis.thaw();
    println!("longest OPTIONS round trip while Redis was frozen: {worst_frozen:?}");
    assert!(
        worst_frozen < REDIS_TIMEOUT * 4,
        "a worker stalled for {worst_frozen:?} (redis_timeout {REDIS_TIMEOUT:?})"
    );

    // Redis stopped: new calls are refused at once with the script's 500,
    // and nothing reaches the callee.
    std::thread::sleep(Duration::from_secs(1));
    redis.shutdown();
    std::thread::sleep(Duration::from_millis(1500)); // every worker has noticed
    for i in 0..5 {
        let call = Call::new(
            &format!("during-outage-{i}"),
            &format!("sip:13545769997@{}", p.callee.addr),
        );
        let sent = Instant::now();
        p.caller.send(k.addr, &call.invite(&p.caller));
        p.caller.expect_reply(500, "INVITE");
        let took = sent.elapsed();
        assert!(took < REDIS_TIMEOUT * 2, "refusal took {took:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let worst_down = worst_options_round_trip(k.addr, Duration::from_secs(1));
    println!("longest OPTIONS round trip while Redis was down: {worst_down:?}");
    assert!(worst_down < REDIS_TIMEOUT * 4);
    p.callee.expect_silence(Duration::from_millis(200));
    let log = k.log_text();
    assert!(
        log.contains("topos_request: refused a new dialog: dialog storage unavailable"),
        "{log}"
    );

    // Redis back with its data, same Kamailio.
    let _redis = RedisServer::start_durable(port, &data);
    let attempts = wait_for_a_complete_call(&k, &p, "after-outage");
    println!("calls tried until one completed after the restart: {attempts}");

    // The calls answered before the outage are routed and billed once.
    for call in &answered {
        let billed = hang_up(&k, &p, call);
        assert!(
            billed.ends_with("元 0.05 caller"),
            "bill of {}: {billed}",
            call.call_id
        );
    }
    let log = k.log_text();
    for call in &answered {
        let lines = log
            .lines()
            .filter(|l| l.contains(&format!("CALL BILLING - Call-ID: {},", call.call_id)))
            .count();
        assert_eq!(lines, 1, "billing lines for {}", call.call_id);
    }

    // sipp: every call ended one way or the other, the outage cost calls,
    // the rest went through, and neither side ever saw the other's address.
    let totals = load.finish(Duration::from_secs(100));
    let (ok, failed) = (totals.get("SuccessfulCall"), totals.get("FailedCall"));
    println!("sipp: {ok} successful, {failed} failed of 600");
    assert_eq!(ok + failed, 600, "calls left hanging:\n{}", totals.errors);
    assert!(failed > 0, "an outage that failed no call was no outage");
    // Redis is frozen or down for about 7 of the 15 s: the calls of the
    // other 8 s (about 320) go through; 200 leaves room for a slow machine.
    assert!(ok >= 200, "only {ok} calls completed:\n{}", totals.errors);
    assert_eq!(
        totals.get("FailedRegexpDoesntMatch") + totals.get("FailedRegexpHdrNotFound"),
        0,
        "a sipp side saw the other side's address:\n{}",
        totals.errors
    );
    assert!(!totals.errors.contains("leak"), "{}", totals.errors);
}
