//! TLS for a test's Redis: a CA, a server certificate for 127.0.0.1 and a
//! client certificate, all made by openssl in the test's directory, and a
//! redis-server that only listens on its TLS port and checks clients
//! (Redis's default `tls-auth-clients yes`).

use super::kamailio::{free_tcp_port, scratch_dir};
use super::redis::RedisServer;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TlsFiles {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (make deps installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a certificate `name`.crt signed by the CA, with `ext` (v3
/// extensions).
fn signed(dir: &Path, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    let (key, csr, crt, extf) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &extf,
            "-out",
            &crt,
        ],
        dir,
    );
}

impl TlsFiles {
    pub fn make() -> TlsFiles {
        let dir = scratch_dir("redis-tls");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=topos_rs test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
            &dir,
        );
        signed(
            &dir,
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        );
        signed(&dir, "client", "extendedKeyUsage=clientAuth\n");
        TlsFiles {
            ca: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            dir,
        }
    }

    /// What a client presents and trusts: the client certificate and key,
    /// and the CA.
    pub fn client_certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(&self.client_cert).unwrap(),
                client_key: std::fs::read(&self.client_key).unwrap(),
            }),
            root_cert: Some(std::fs::read(&self.ca).unwrap()),
        }
    }

    /// As `RedisTls` for the store.
    pub fn store_tls(&self) -> topos_rs::config::RedisTls {
        let c = self.client_certificates();
        let client = c.client_tls.unwrap();
        topos_rs::config::RedisTls {
            ca: c.root_cert,
            client: Some((client.client_cert, client.client_key)),
        }
    }

    /// redis-server arguments for TLS with these files.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert-file".into(),
            self.server_cert.display().to_string(),
            "--tls-key-file".into(),
            self.server_key.display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca.display().to_string(),
        ]
    }

    /// A redis-server with TLS only (no plain TCP port).
    pub fn server(&self) -> RedisServer {
        let port = free_tcp_port();
        let mut args = vec!["--tls-port".to_string(), port.to_string()];
        args.extend(self.server_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        RedisServer::start_with(0, port, &args)
    }
}

/// The test process's rustls crypto provider (the module installs its own
/// when it opens a rediss store).
pub fn install_crypto() {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}
