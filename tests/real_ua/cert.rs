//! A self-signed certificate (EC P-256, CN=127.0.0.1) made by openssl at
//! test time, for Kamailio's TLS (and WSS) sockets and the TLS user agents.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The certificate and key files.
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate and key in one file (baresip's sip_certificate).
    pub both: PathBuf,
}

pub fn make_cert(dir: &Path) -> Cert {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let both = dir.join("both.pem");
    let mut pem = std::fs::read(&cert).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    std::fs::write(&both, pem).unwrap();
    Cert { cert, key, both }
}
