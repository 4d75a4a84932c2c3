//! Issue 20 point 5, end to end against the real Kamailio on a real Redis
//! that the test stops (SIGKILL) and starts again on the same port with the
//! same data: with sealed tokens (the default) calls go on during the
//! outage, in both directions, new calls are set up, and no bill is lost.
//! Answers and BYEs Redis could not take wait in the node's billing journal
//! and are billed once Redis is back, each call exactly once, with the
//! real time from its answer to its BYE.

mod common;

use common::calls::{answer, callee_request, Parties};
use common::ctl::{field, kamcmd};
use common::kamailio::{free_tcp_port, scratch_dir, Kamailio};
use common::redis::RedisServer;
use common::sip::{Call, Msg};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROUTING: &str = "tests/cfg/routing.cfg";
/// topos_rs's default `redis_timeout`: no worker may wait longer.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const FROM: &str = "01089672389";
const TO: &str = "13545769997";

/// A Kamailio on Redis (sealed tokens, the default) with a CDR file and a
/// ctl socket, and the Redis, durable on a fixed port.
struct Node {
    k: Kamailio,
    cdr: PathBuf,
    ctl: PathBuf,
    port: u16,
    data: PathBuf,
}

fn node() -> (Node, RedisServer) {
    let data = scratch_dir("outage-redis-data");
    let port = free_tcp_port();
    let redis = RedisServer::start_durable(port, &data);
    (node_on(port, &data, &[]), redis)
}

/// A Kamailio on the durable Redis of `port` and `data`, with `more`
/// defines.
fn node_on(port: u16, data: &Path, more: &[&str]) -> Node {
    let dir = scratch_dir("outage");
    let cdr = dir.join("cdr.jsonl");
    let ctl = dir.join("ctl.sock");
    let mut defines = vec![
        format!("STORAGE=\"redis://127.0.0.1:{port}/0\""),
        format!("BILLING_CDR=\"file:{}\"", cdr.display()),
        format!("CTL_SOCKET=\"unix:{}\"", ctl.display()),
    ];
    defines.extend(more.iter().map(|d| d.to_string()));
    let refs: Vec<&str> = defines.iter().map(String::as_str).collect();
    Node {
        k: Kamailio::start(ROUTING, &refs),
        cdr,
        ctl,
        port,
        data: data.to_path_buf(),
    }
}

impl Node {
    /// One `topos_rs.stats` number.
    fn stat(&self, name: &str) -> u64 {
        let (ok, reply) = kamcmd(&self.ctl, &["topos_rs.stats"]);
        assert!(ok, "{reply}");
        field(&reply, name).parse().unwrap()
    }

    /// Waits (bounded) until `name` reads `value`; returns how long it took.
    fn wait_stat(&self, name: &str, value: u64, within: Duration) -> Duration {
        let start = Instant::now();
        while self.stat(name) != value {
            assert!(
                start.elapsed() < within,
                "{name} stayed {} (wanted {value}); log:\n{}",
                self.stat(name),
                self.k.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }

    /// The CALL BILLING lines of the log.
    fn billing_lines(&self) -> Vec<String> {
        self.k
            .log_text()
            .lines()
            .filter_map(|l| l.find("CALL BILLING - ").map(|i| l[i..].to_string()))
            .collect()
    }

    fn cdrs(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.cdr)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a CDR is one JSON object"))
            .collect()
    }

    fn redis_again(&self) -> RedisServer {
        RedisServer::start_durable(self.port, &self.data)
    }
}

/// The exact line the requirement fixes, at the default 0.05 per second.
fn line(call_id: &str, duration: u64, cost: &str) -> String {
    format!(
        "CALL BILLING - Call-ID: {call_id}, From: {FROM}, To: {TO}, Duration: {duration} sec, Cost: {cost} 元"
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sleeps until `since` + n.5 s for the smallest whole n >= `at_least`
/// that is still ahead, so the billed whole seconds (n) are unambiguous;
/// returns n.
fn talk_until_half_past(since: Instant, at_least: u64) -> u64 {
    let mut n = at_least;
    while since + Duration::from_millis(n * 1000 + 500) < Instant::now() + Duration::from_millis(50)
    {
        n += 1;
    }
    std::thread::sleep((since + Duration::from_millis(n * 1000 + 500)) - Instant::now());
    n
}

/// The Contact URI of a message, without the brackets.
fn contact(m: &Msg) -> String {
    m.header("contact")
        .expect("a Contact")
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// How long each relayed message took through Kamailio during the outage.
#[derive(Default)]
struct Hops(Vec<(&'static str, Duration)>);

impl Hops {
    /// Sends (with `send`), then waits for what the other side gets.
    fn time<T>(&mut self, what: &'static str, send: impl FnOnce(), recv: impl FnOnce() -> T) -> T {
        let sent = Instant::now();
        send();
        let got = recv();
        self.0.push((what, sent.elapsed()));
        got
    }

    fn worst(&self) -> (&'static str, Duration) {
        *self.0.iter().max_by_key(|(_, d)| *d).expect("hops")
    }
}

/// Issue 20 point 5: call 1 is answered with Redis up; Redis is killed;
/// call 1's re-INVITE (from the callee) with its ACK and an INFO of the
/// caller route, call 2 is set up, answered and routed, call 1 ends — all
/// while Redis is down, each message relayed well within redis_timeout;
/// Redis comes back (same port, same data) 4 s after call 1 ended; the
/// timer writes the journal; call 2 ends. Each call has exactly one CALL
/// BILLING line and one CDR, with the time from its answer to its BYE.
#[test]
fn calls_go_on_during_a_redis_outage_and_each_is_billed_once_from_answer_to_bye() {
    let (n, mut redis) = node();
    let k = &n.k;
    let p = Parties::new();

    // Call 1, answered while Redis is up: its bill is in Redis.
    let (mut call1, inv1, answered1) = answer(k, &p, "outage-call-1");
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{}/0", n.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let bills: Vec<String> = redis::cmd("KEYS")
        .arg("topos_rs:*:bill:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(bills.len(), 1, "{bills:?}");
    drop(con);

    // Redis dies.
    redis.stop();
    let mut hops = Hops::default();

    // Call 1 routes both ways: a re-INVITE from the callee, its 200 and
    // ACK, and an INFO from the caller.
    let reinvite = hops.time(
        "re-INVITE callee→caller",
        || {
            p.callee.send(
                k.addr,
                &callee_request(
                    &p,
                    &inv1,
                    "INVITE",
                    1,
                    Some(&format!("sip:callee@{}", p.callee.addr)),
                ),
            )
        },
        || p.caller.expect_request("INVITE"),
    );
    assert_eq!(reinvite.header("call-id").unwrap(), "outage-call-1");
    hops.time(
        "200 to the re-INVITE caller→callee",
        || p.caller.reply(&reinvite, 200, "OK", "unused"),
        || p.callee.expect_reply(200, "INVITE"),
    );
    hops.time(
        "ACK callee→caller",
        || {
            p.callee
                .send(k.addr, &callee_request(&p, &inv1, "ACK", 1, None))
        },
        || p.caller.expect_request("ACK"),
    );
    // The caller follows the target refresh.
    call1.remote_target = Some(contact(&reinvite));
    let info = hops.time(
        "INFO caller→callee",
        || {
            p.caller
                .send(k.addr, &call1.in_dialog(&p.caller, "INFO", 2))
        },
        || p.callee.expect_request("INFO"),
    );
    hops.time(
        "200 to the INFO callee→caller",
        || p.callee.reply(&info, 200, "OK", "callee-tag"),
        || p.caller.expect_reply(200, "INFO"),
    );

    // Call 2 is set up, answered and routed with Redis down.
    let mut call2 = Call::new("outage-call-2", &format!("sip:{TO}@{}", p.callee.addr));
    let inv2 = hops.time(
        "INVITE of call 2",
        || p.caller.send(k.addr, &call2.invite(&p.caller)),
        || p.callee.expect_request("INVITE"),
    );
    let ok2 = hops.time(
        "200 of call 2 (billing_start)",
        || p.callee.reply(&inv2, 200, "OK", "callee-tag"),
        || p.caller.expect_reply(200, "INVITE"),
    );
    let answered2 = Instant::now();
    call2.confirm(&ok2);
    hops.time(
        "ACK of call 2",
        || p.caller.send(k.addr, &call2.in_dialog(&p.caller, "ACK", 1)),
        || p.callee.expect_request("ACK"),
    );

    // Call 1 ends during the outage: the BYE is relayed, its end journaled.
    let talk1 = talk_until_half_past(answered1, 2);
    let bye1 = hops.time(
        "BYE of call 1 (billing_stop)",
        || p.caller.send(k.addr, &call1.in_dialog(&p.caller, "BYE", 3)),
        || p.callee.expect_request("BYE"),
    );
    let bye1_ms = now_ms();
    assert_eq!(bye1.header("x-billed").as_deref(), Some("journaled"));
    p.callee.reply(&bye1, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "BYE");
    let ended1 = Instant::now();

    let (worst, took) = hops.worst();
    println!(
        "relayed during the outage: {} messages, the slowest ({worst}) in {took:?}",
        hops.0.len()
    );
    assert!(
        took < REDIS_TIMEOUT,
        "{worst} took {took:?}: a worker waited (redis_timeout {REDIS_TIMEOUT:?})"
    );
    // Nothing billed yet: call 2's answer and call 1's BYE wait.
    assert_eq!(n.stat("billing_journal_pending"), 2);
    assert_eq!(n.stat("billing_journaled"), 2);
    assert_eq!(n.stat("calls_billed"), 0);
    assert!(n.billing_lines().is_empty(), "{:?}", n.billing_lines());

    // Redis is back 4 s after call 1 ended (same port, same data).
    std::thread::sleep((ended1 + Duration::from_secs(4)) - Instant::now());
    let back_ms = now_ms();
    let _redis = n.redis_again();
    let replay = n.wait_stat("billing_journal_pending", 0, Duration::from_secs(10));
    println!("journal written to Redis {replay:?} after it came back");
    assert_eq!(n.stat("billing_journal_replayed"), 2);

    // Call 1 is billed from its answer to its BYE, not to Redis's return.
    let want1 = line("outage-call-1", talk1, &format!("0.{:02}", talk1 * 5));
    let lines = n.billing_lines();
    assert_eq!(lines, std::slice::from_ref(&want1));

    // Call 2 ends with Redis up: billed by its BYE, from its journaled
    // answer's time.
    let talk2 = talk_until_half_past(answered2, 10);
    p.caller.send(k.addr, &call2.in_dialog(&p.caller, "BYE", 2));
    let bye2 = p.callee.expect_request("BYE");
    assert_eq!(
        bye2.header("x-billed").unwrap(),
        format!("{talk2} {talk2} 0.{:02} 元 0.05 caller", talk2 * 5)
    );
    p.callee.reply(&bye2, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "BYE");

    // Exactly one line per call, and nothing more comes.
    std::thread::sleep(Duration::from_millis(1500));
    let want2 = line("outage-call-2", talk2, &format!("0.{:02}", talk2 * 5));
    assert_eq!(n.billing_lines(), [want1, want2]);
    assert_eq!(n.stat("calls_billed"), 2);
    assert_eq!(n.stat("billing_journal_pending"), 0);

    // The CDRs agree, with the BYE's own time.
    let cdrs = n.cdrs();
    assert_eq!(cdrs.len(), 2, "{cdrs:?}");
    for (cdr, (id, talk)) in cdrs
        .iter()
        .zip([("outage-call-1", talk1), ("outage-call-2", talk2)])
    {
        assert_eq!(cdr["call_id"], id);
        assert_eq!(cdr["from"], FROM);
        assert_eq!(cdr["to"], TO);
        assert_eq!(cdr["duration"], talk);
        assert_eq!(cdr["billed_seconds"], talk);
        assert_eq!(cdr["cost"], format!("0.{:02}", talk * 5));
        assert_eq!(cdr["hangup"], "caller");
        let (a, e) = (
            cdr["answer_time_ms"].as_u64().unwrap(),
            cdr["end_time_ms"].as_u64().unwrap(),
        );
        assert_eq!((e - a) / 1000, talk, "{cdr}");
    }
    // Call 1's end is its BYE's time, before Redis was back.
    let end1 = cdrs[0]["end_time_ms"].as_u64().unwrap();
    assert!(
        end1 < back_ms,
        "end {end1} is after Redis came back at {back_ms}"
    );
    assert!(end1.abs_diff(bye1_ms) < 200, "end {end1}, BYE at {bye1_ms}");
}

/// The slow timer process of `k` (it runs the journal's replay), from
/// `core.psx`.
fn slow_timer_pid(ctl: &Path) -> i32 {
    let (ok, psx) = kamcmd(ctl, &["core.psx"]);
    assert!(ok, "{psx}");
    let mut pid = None;
    for l in psx.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("PID: ") {
            pid = v.parse().ok();
        }
        if l == "DSC: slow timer" {
            return pid.expect("PID before DSC");
        }
    }
    panic!("no slow timer in:\n{psx}");
}

/// Stops a process of the Kamailio this test started (SIGSTOP) until
/// dropped.
struct Frozen(i32);

impl Frozen {
    fn new(pid: i32) -> Frozen {
        // SAFETY: signals a child of the Kamailio this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// A call answered during the outage whose BYE comes after Redis is back
/// but before the timer wrote the journal (the timer process is held
/// stopped): the worker finds the answer in the journal, writes it, and
/// bills the call from it in that BYE (the callee sees the bill in the
/// BYE). A second BYE, and the timer once it runs, bill nothing more.
#[test]
fn a_bye_after_redis_is_back_but_before_the_replay_bills_from_the_journaled_answer() {
    let (n, mut redis) = node();
    let k = &n.k;
    let p = Parties::new();
    redis.stop();

    let (call, inv, answered) = answer(k, &p, "outage-call-3");
    assert_eq!(n.stat("billing_journal_pending"), 1);

    // The timer cannot replay; Redis comes back.
    let timer = Frozen::new(slow_timer_pid(&n.ctl));
    let _redis = n.redis_again();
    // Every worker's store connection tries again at most 1 s after its
    // last failure.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(n.stat("billing_journal_pending"), 1, "the timer ran");

    let talk = talk_until_half_past(answered, 2);
    p.caller.send(k.addr, &call.in_dialog(&p.caller, "BYE", 2));
    let bye = p.callee.expect_request("BYE");
    assert_eq!(
        bye.header("x-billed").unwrap(),
        format!("{talk} {talk} 0.{:02} 元 0.05 caller", talk * 5)
    );
    p.callee.reply(&bye, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "BYE");
    let want = line("outage-call-3", talk, &format!("0.{:02}", talk * 5));
    assert_eq!(n.billing_lines(), std::slice::from_ref(&want));
    // The worker emptied the journal, not the timer.
    assert_eq!(n.stat("billing_journal_pending"), 0);
    assert_eq!(n.stat("billing_journal_replayed"), 1);

    // The callee's BYE (a second end of the same call) bills nothing.
    p.callee
        .send(k.addr, &callee_request(&p, &inv, "BYE", 2, None));
    let second = p.caller.expect_request("BYE");
    p.caller.reply(&second, 200, "OK", "unused");
    p.callee.expect_reply(200, "BYE");
    assert_eq!(second.header("x-billed").as_deref(), Some("none -2"));

    // The timer runs again: nothing left to bill.
    drop(timer);
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(n.billing_lines(), [want]);
    assert_eq!(n.cdrs().len(), 1);
    assert_eq!(n.stat("calls_billed"), 1);
}

/// Two nodes sharing one Redis and the key file, both behind one virtual
/// address: a call answered on node A and ended on node B, both during the
/// outage. B writes its journaled BYE first (A's timer is held stopped):
/// there is no bill yet, so the end waits in Redis; A then writes the
/// answer, which finds that end and bills the call once, from the answer
/// to the BYE.
#[test]
fn an_answer_journaled_on_one_node_and_a_bye_on_another_bill_once() {
    let data = scratch_dir("outage-redis-data");
    let port = free_tcp_port();
    let mut redis = RedisServer::start_durable(port, &data);
    let keys = scratch_dir("outage-keys").join("topos_rs.keys");
    std::fs::write(&keys, format!("{}\n", "5".repeat(64))).unwrap();
    let key_define = format!("TOKEN_KEY_FILE=\"{}\"", keys.display());
    let vip = [
        key_define.as_str(),
        "ADVERTISE_ADDRESS=\"127.0.0.100\"",
        "ADVERTISE_PORT=5060",
        "CONTACT_HOST=\"127.0.0.100:5060\"",
    ];
    let a = node_on(port, &data, &vip);
    let b = node_on(port, &data, &vip);
    let p = Parties::new();
    redis.stop();

    // Answered through A, ended through B (the virtual address moved).
    let (call, _, answered) = answer(&a.k, &p, "outage-call-4");
    assert_eq!(a.stat("billing_journal_pending"), 1);
    let a_timer = Frozen::new(slow_timer_pid(&a.ctl));
    let talk = talk_until_half_past(answered, 2);
    p.caller
        .send(b.k.addr, &call.in_dialog(&p.caller, "BYE", 2));
    let bye = p.callee.expect_request("BYE");
    assert_eq!(bye.header("x-billed").as_deref(), Some("journaled"));
    p.callee.reply(&bye, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "BYE");
    assert_eq!(b.stat("billing_journal_pending"), 1);

    // Redis is back: B writes the end; with no bill yet, it waits there.
    let _redis = a.redis_again();
    b.wait_stat("billing_journal_pending", 0, Duration::from_secs(10));
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .get_connection()
        .unwrap();
    let bills: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("topos_rs:*:bill:*")
        .query(&mut con)
        .unwrap();
    let states: Vec<u8> = bills
        .iter()
        .map(|k| {
            let v: Vec<u8> = redis::cmd("GET").arg(k).query(&mut con).unwrap();
            v[0]
        })
        .collect();
    // Under each key the BYE may close (its From-tag's, its To-tag's).
    assert_eq!(states, [b'B', b'B'], "pending ends");
    assert!(a.billing_lines().is_empty() && b.billing_lines().is_empty());

    // A's timer runs: its answer finds the end and bills the call, once.
    drop(a_timer);
    a.wait_stat("billing_journal_pending", 0, Duration::from_secs(10));
    let want = line("outage-call-4", talk, &format!("0.{:02}", talk * 5));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.billing_lines(), std::slice::from_ref(&want));
    assert!(b.billing_lines().is_empty(), "{:?}", b.billing_lines());
    let cdrs = a.cdrs();
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["duration"], talk);
    assert_eq!(cdrs[0]["hangup"], "caller");
    assert!(b.cdrs().is_empty());
    // The bill is a tombstone now: a second BYE on either node bills nothing.
    p.caller
        .send(a.k.addr, &call.in_dialog(&p.caller, "BYE", 3));
    let again = p.callee.expect_request("BYE");
    assert_eq!(again.header("x-billed").as_deref(), Some("none -2"));
    p.callee.reply(&again, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "BYE");
}

/// Redis frozen (SIGSTOP: connections stay open, nothing answers), the
/// worst case for a worker: the 2xx and the BYE of a call each wait for
/// Redis at most redis_timeout, then go to the journal and are relayed;
/// once Redis answers again the call is billed once, answer to BYE.
#[test]
fn with_redis_frozen_a_worker_waits_at_most_redis_timeout_and_the_call_is_billed_once() {
    let (n, redis) = node();
    let k = &n.k;
    let p = Parties::new();
    // Both workers have a connection to Redis before it freezes.
    for i in 0..4 {
        let (call, _, _) = answer(k, &p, &format!("warm-{i}"));
        p.caller.send(k.addr, &call.in_dialog(&p.caller, "BYE", 2));
        let bye = p.callee.expect_request("BYE");
        p.callee.reply(&bye, 200, "OK", "callee-tag");
        p.caller.expect_reply(200, "BYE");
    }
    let warm = n.billing_lines().len();
    redis.freeze();

    let mut hops = Hops::default();
    let mut call = Call::new("frozen-call", &format!("sip:{TO}@{}", p.callee.addr));
    let inv = hops.time(
        "INVITE",
        || p.caller.send(k.addr, &call.invite(&p.caller)),
        || p.callee.expect_request("INVITE"),
    );
    let ok = hops.time(
        "200 (billing_start)",
        || p.callee.reply(&inv, 200, "OK", "callee-tag"),
        || p.caller.expect_reply(200, "INVITE"),
    );
    let answered = Instant::now();
    call.confirm(&ok);
    hops.time(
        "ACK",
        || p.caller.send(k.addr, &call.in_dialog(&p.caller, "ACK", 1)),
        || p.callee.expect_request("ACK"),
    );
    let talk = talk_until_half_past(answered, 2);
    let bye = hops.time(
        "BYE (billing_stop)",
        || p.caller.send(k.addr, &call.in_dialog(&p.caller, "BYE", 2)),
        || p.callee.expect_request("BYE"),
    );
    assert_eq!(bye.header("x-billed").as_deref(), Some("journaled"));
    p.callee.reply(&bye, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "BYE");
    for (what, took) in &hops.0 {
        println!("with Redis frozen: {what} relayed in {took:?}");
    }
    let (worst, took) = hops.worst();
    // One wait of redis_timeout, never two (the relay itself takes
    // about a millisecond; the rest is room for a loaded machine).
    assert!(
        took < REDIS_TIMEOUT + Duration::from_millis(200),
        "{worst} took {took:?} (redis_timeout {REDIS_TIMEOUT:?})"
    );
    assert_eq!(n.stat("billing_journal_pending"), 2);

    redis.thaw();
    n.wait_stat("billing_journal_pending", 0, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1000));
    let lines = n.billing_lines();
    assert_eq!(
        &lines[warm..],
        [line("frozen-call", talk, &format!("0.{:02}", talk * 5))]
    );
}
