//! Per-operation latency of the two store backends (`make bench-store`).
//! A micro-benchmark, not a test: it prints numbers and asserts nothing.
//!
//! Usage: store_bench [operations per kind]. It starts its own
//! redis-server on a free loopback port and stops it (by PID) at the end.

use std::time::{Duration, Instant};
use topos_rs::store::lmdb::LmdbStore;
use topos_rs::store::redis::RedisStore;
use topos_rs::store::Store;

const TTL: Duration = Duration::from_secs(600);

fn measure(name: &str, n: usize, mut op: impl FnMut(usize)) {
    let t = Instant::now();
    for i in 0..n {
        op(i);
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("  {name:<8} {per:>8.2} µs/op");
}

fn bench(label: &str, s: &mut dyn Store, n: usize) {
    println!("{label} ({n} operations each):");
    let key = |i: usize| format!("topos_rs:{{bench}}:k{i}").into_bytes();
    let value = vec![b'x'; 200];
    measure("put", n, |i| s.put(&key(i), &value, TTL).unwrap());
    measure("get", n, |i| {
        s.get(&key(i)).unwrap();
    });
    measure("touch", n, |i| {
        s.touch(&key(i), TTL).unwrap();
    });
    measure("take", n, |i| {
        s.take(&key(i)).unwrap();
    });
    measure("put_new", n, |i| {
        s.put_new(&key(i), &value, TTL).unwrap();
    });
    measure("delete", n, |i| {
        s.delete(&key(i)).unwrap();
    });
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("topos-rs-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut server = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting redis-server");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut lmdb = LmdbStore::open(&dir.join("lmdb"), 256).expect("opening LMDB");
    bench("lmdb", &mut lmdb, n);
    let url = format!("redis://127.0.0.1:{port}/0");
    let mut redis = RedisStore::new(&url, Duration::from_millis(250)).expect("Redis URL");
    bench("redis", &mut redis, n);

    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
