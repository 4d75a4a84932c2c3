//! Configuration checks with the real kamailio binary: every example config
//! parses with the module loaded, and bad set-ups stop start-up with a
//! message that says what is wrong.

mod common;

use common::kamailio::{kamailio_bin, module_path, repo_root, scratch_dir};
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kamailio_check(cfg: &Path, defines: &[&str]) -> Output {
    let mut cmd = Command::new(kamailio_bin());
    cmd.arg("-c")
        .arg("-f")
        .arg(cfg)
        .arg("-L")
        .arg(module_path());
    for d in defines {
        cmd.arg("-A").arg(d);
    }
    cmd.output().expect("running kamailio -c")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_example_config_passes_kamailio_c() {
    let dir = repo_root().join("cfg-examples");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("cfg") {
            continue;
        }
        let out = kamailio_check(&path, &[]);
        assert!(
            out.status.success() && text(&out).contains("config file ok"),
            "kamailio -c failed on {}:\n{}",
            path.display(),
            text(&out)
        );
        checked += 1;
    }
    assert!(checked >= 1, "no config in cfg-examples/");
}

#[test]
fn test_configs_pass_kamailio_c_with_and_without_topos() {
    let cfg = repo_root().join("tests/cfg/routing.cfg");
    for defines in [&[][..], &["WITHOUT_TOPOS"][..]] {
        let out = kamailio_check(&cfg, defines);
        assert!(out.status.success(), "{defines:?}:\n{}", text(&out));
    }
}

/// The example config with one line added after `loadmodule "topos_rs.so"`.
fn example_with(extra: &str) -> std::path::PathBuf {
    let example = fs::read_to_string(repo_root().join("cfg-examples/kamailio.cfg")).unwrap();
    let cfg = example.replacen(
        "loadmodule \"topos_rs.so\"\n",
        &format!("loadmodule \"topos_rs.so\"\n{extra}\n"),
        1,
    );
    assert_ne!(cfg, example);
    let path = scratch_dir("cfg").join("kamailio.cfg");
    fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn bad_storage_value_stops_start_up_naming_the_parameter() {
    for (value, expected) in [
        (
            "mysql://db",
            "modparam \"storage\": \"mysql://db\" is neither lmdb:<dir> nor redis://",
        ),
        ("lmdb:", "modparam \"storage\": \"lmdb:\" needs a directory"),
        (
            "redis://127.0.0.1:99999/0",
            "modparam \"storage\": Redis port \"99999\" is not 1-65535",
        ),
    ] {
        let cfg = example_with(&format!("modparam(\"topos_rs\", \"storage\", \"{value}\")"));
        let out = kamailio_check(&cfg, &[]);
        assert!(!out.status.success(), "{value} was accepted");
        assert!(
            text(&out).contains(expected),
            "{value}: no {expected:?} in:\n{}",
            text(&out)
        );
    }
}

#[test]
fn good_storage_values_are_accepted() {
    for value in [
        "lmdb:/tmp/topos-rs-cfg-check",
        "redis://127.0.0.1:6379/0",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/topos/0",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        "rediss://127.0.0.1:6380/0",
    ] {
        let cfg = example_with(&format!("modparam(\"topos_rs\", \"storage\", \"{value}\")"));
        let out = kamailio_check(&cfg, &[]);
        assert!(out.status.success(), "{value}:\n{}", text(&out));
    }
}

/// Each (modparam line, expected message): `kamailio -c` refuses the
/// example config with that line and prints the message.
fn assert_each_refused(cases: &[(&str, &str)]) {
    for (line, expected) in cases {
        let out = kamailio_check(&example_with(line), &[]);
        assert!(!out.status.success(), "{line} was accepted");
        assert!(
            text(&out).contains(expected),
            "{line}: no {expected:?} in:\n{}",
            text(&out)
        );
    }
}

#[test]
fn bad_integer_parameters_stop_start_up_naming_the_parameter() {
    assert_each_refused(&[
        (
            "modparam(\"topos_rs\", \"lmdb_map_size\", 0)",
            "modparam \"lmdb_map_size\": 0 is outside 1..1048576 MiB",
        ),
        (
            "modparam(\"topos_rs\", \"redis_timeout\", 999999)",
            "modparam \"redis_timeout\": 999999 is outside 1..60000 ms",
        ),
    ]);
}

/// Starts kamailio on `cfg` expecting it to refuse to start; returns stderr.
fn start_expecting_failure(cfg: &Path, dir: &Path) -> String {
    start_expecting_failure_with(cfg, dir, &[])
}

/// As `start_expecting_failure`, with more command-line arguments.
fn start_expecting_failure_with(cfg: &Path, dir: &Path, args: &[&str]) -> String {
    let mut child = Command::new(kamailio_bin())
        .args(args)
        .arg("-DD")
        .arg("-E")
        .arg("-f")
        .arg(cfg)
        .arg("-L")
        .arg(module_path())
        .arg("-Y")
        .arg(dir)
        .arg("-A")
        .arg(format!(
            "LISTEN=udp:127.0.0.1:{}",
            common::kamailio::free_port()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Generous: a start that registers 32,000 counters takes ~5 s alone.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            // SAFETY: stops the process this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            panic!("kamailio kept running with {}", cfg.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    err
}

#[test]
fn unwritable_lmdb_directory_stops_start_up_naming_the_parameter() {
    let cfg = example_with("modparam(\"topos_rs\", \"storage\", \"lmdb:/proc/topos_rs\")");
    let err = start_expecting_failure(&cfg, &scratch_dir("unwritable"));
    assert!(
        err.contains("topos_rs: modparam \"storage\": cannot create /proc/topos_rs"),
        "{err}"
    );
}

/// A malformed Redis URL (or TLS files without a rediss URL) stops
/// start-up with one line that says what is wrong.
#[test]
fn malformed_redis_urls_stop_start_up_with_the_exact_line() {
    for (lines, expected) in [
        (
            "modparam(\"topos_rs\", \"storage\", \"redis+sentinel://127.0.0.1:26379,127.0.0.1:26380\")",
            "topos_rs: modparam \"storage\": redis+sentinel:// needs a master name: \
             redis+sentinel://[user:password@]host:port,host:port/<master name>/<db>",
        ),
        (
            "modparam(\"topos_rs\", \"storage\", \"redis+cluster://127.0.0.1:7000,,127.0.0.1:7002\")",
            "topos_rs: modparam \"storage\": empty host in the Redis host list",
        ),
        (
            "modparam(\"topos_rs\", \"storage\", \"redis+sentinel://127.0.0.1:26379/topos/zero\")",
            "topos_rs: modparam \"storage\": Redis database \"zero\" is not a number",
        ),
        (
            "modparam(\"topos_rs\", \"storage\", \"redis://127.0.0.1:6379/0\")\n\
             modparam(\"topos_rs\", \"redis_tls_ca\", \"/etc/ssl/certs/ca-certificates.crt\")",
            "topos_rs: modparam \"redis_tls_ca\": is for TLS to Redis: the storage URL must start with rediss",
        ),
    ] {
        let err = start_expecting_failure(&example_with(lines), &scratch_dir("bad-redis-url"));
        assert!(
            err.lines().any(|l| l.ends_with(expected)),
            "no line ending with {expected:?} in:\n{err}"
        );
    }
}

#[test]
fn bad_rates_file_stops_start_up_with_file_and_line() {
    let dir = scratch_dir("bad-rates");
    let rates = dir.join("rates.csv");
    fs::write(&rates, "prefix,rate\n135,0.10\n136,ten cents\n").unwrap();
    let cfg = example_with(&format!(
        "modparam(\"topos_rs\", \"billing_rates_file\", \"{}\")",
        rates.display()
    ));
    let err = start_expecting_failure(&cfg, &dir);
    assert!(
        err.contains(&format!(
            "topos_rs: modparam \"billing_rates_file\": rates file {} line 3: rate \"ten cents\"",
            rates.display()
        )),
        "{err}"
    );
}

#[test]
fn redis_cdr_stream_without_redis_storage_stops_start_up() {
    let cfg = example_with("modparam(\"topos_rs\", \"billing_cdr\", \"redis:cdr\")");
    let err = start_expecting_failure(&cfg, &scratch_dir("cdr-no-redis"));
    assert!(
        err.contains("modparam \"billing_cdr\": redis:<stream key> needs Redis storage"),
        "{err}"
    );
}

#[test]
fn bad_billing_values_stop_start_up_naming_the_parameter() {
    assert_each_refused(&[
        (
            "modparam(\"topos_rs\", \"billing_rate\", \"0,05\")",
            "modparam \"billing_rate\": rate \"0,05\"",
        ),
        (
            "modparam(\"topos_rs\", \"billing_increment\", \"60\")",
            "modparam \"billing_increment\": increment \"60\"",
        ),
        (
            "modparam(\"topos_rs\", \"billing_decimals\", 12)",
            "modparam \"billing_decimals\": 12 is outside 0..8",
        ),
        (
            "modparam(\"topos_rs\", \"billing_cdr\", \"syslog\")",
            "modparam \"billing_cdr\": \"syslog\" is none of",
        ),
    ]);
}

#[test]
fn missing_tm_stops_start_up_with_a_clear_message() {
    let dir = scratch_dir("no-tm");
    let cfg = dir.join("kamailio.cfg");
    fs::write(
        &cfg,
        "#!KAMAILIO\nlisten=LISTEN\nlog_stderror=yes\n\
         loadmodule \"topos_rs.so\"\nrequest_route { drop; }\n",
    )
    .unwrap();
    let err = start_expecting_failure(&cfg, &dir);
    assert!(
        err.contains(
            "topos_rs: cannot bind the tm module API: loadmodule \"tm.so\" before \"topos_rs.so\""
        ),
        "{err}"
    );
}

/// tm, then statistics with `fill` script counters, then topos_rs.
fn counters_filled_by_statistics(dir: &Path, fill: usize) -> std::path::PathBuf {
    let mut cfg = String::from(
        "#!KAMAILIO\nlisten=LISTEN\nlog_stderror=yes\n\
         loadmodule \"tm.so\"\nloadmodule \"statistics.so\"\n",
    );
    for i in 1..=fill {
        cfg += &format!("modparam(\"statistics\", \"variable\", \"fill{i}\")\n");
    }
    cfg += "loadmodule \"topos_rs.so\"\nrequest_route { drop; }\n";
    let path = dir.join(format!("fill-{fill}.cfg"));
    fs::write(&path, cfg).unwrap();
    path
}

/// Kamailio's counter table is full when topos_rs registers its counters
/// (the statistics module, initialized before it, took every free slot):
/// start-up stops with a line naming the counter refused.
#[test]
fn a_counter_kamailio_refuses_stops_start_up_naming_it() {
    let dir = scratch_dir("counters-full");
    // Too many: statistics itself is refused. It registers its variables
    // last-declared first, so the one refused tells how many slots were
    // free: `fill<total - free>`. Kamailio's table holds 32767 counters
    // (MAX_COUNTER_ID, core/counters.c), some of them the core's and tm's.
    let total = 32767;
    // Private memory for the parser and the statistics module's list.
    let pkg = ["-M", "128"];
    let err = start_expecting_failure_with(&counters_filled_by_statistics(&dir, total), &dir, &pkg);
    let refused: usize = err
        .split("failed to register var. <fill")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("statistics was not refused a counter:\n{err}"));
    let free = total - refused;
    // Exactly as many as were free: statistics starts, topos_rs's first
    // counter is refused.
    let err = start_expecting_failure_with(&counters_filled_by_statistics(&dir, free), &dir, &pkg);
    assert!(!err.contains("failed to register var"), "{err}");
    assert!(
        err.contains(
            "topos_rs: Kamailio refused the counter topos_rs.requests_hidden (its table is \
             full, it is past the fork, or out of memory; counter_register returned -1): \
             topos_rs does not start"
        ),
        "{err}"
    );
}
