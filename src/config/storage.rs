//! The `storage` parameter: LMDB on this host, or Redis as one server,
//! behind Sentinel, or as a Cluster. Every malformed value is refused with
//! a message that says what is wrong; nothing here connects.

use super::ParamError;
use std::fmt;
use std::path::PathBuf;

/// Where the module keeps dialog and billing state (`storage` parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `lmdb:<dir>`: the embedded store, one memory-mapped file per host.
    Lmdb { dir: PathBuf },
    /// A Redis shared by several Kamailio nodes.
    Redis {
        /// The parameter as given (it may hold a password: never logged).
        url: String,
        redis: RedisUrl,
    },
}

/// How the Redis servers of a `storage` URL are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    /// `redis://host:port/db`: one server.
    Single,
    /// `redis+sentinel://s1,s2,s3/<master>/<db>`: the sentinels name the
    /// master; asked again after every connection failure.
    Sentinel { master: String },
    /// `redis+cluster://n1,n2,...`: seed nodes of a Redis Cluster.
    Cluster,
}

/// One `host:port` of the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisNode {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for RedisNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed Redis `storage` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub mode: RedisMode,
    /// `rediss...`: TLS to every server (sentinels and cluster nodes too).
    pub tls: bool,
    /// `user:password` or `password` exactly as written before the `@`;
    /// given to the Redis client in a `redis://` URL, so it is decoded the
    /// same way (percent-encoding) whatever the mode.
    pub auth: Option<String>,
    /// At least one.
    pub nodes: Vec<RedisNode>,
    pub db: u32,
}

/// TLS material for `rediss` URLs (PEM), beyond the system's trusted CAs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// The CA that signed the servers' certificates (instead of the
    /// system's trusted CAs).
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key, for servers that check clients
    /// (Redis's default `tls-auth-clients yes`).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisTls {
    pub fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.ca.is_none() && self.client.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca.clone(),
        })
    }
}

/// The schemes, in the order error messages list them.
const SCHEMES: &[(&str, bool, Kind)] = &[
    ("redis://", false, Kind::Single),
    ("rediss://", true, Kind::Single),
    ("redis+sentinel://", false, Kind::Sentinel),
    ("rediss+sentinel://", true, Kind::Sentinel),
    ("redis+cluster://", false, Kind::Cluster),
    ("rediss+cluster://", true, Kind::Cluster),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Single,
    Sentinel,
    Cluster,
}

fn storage_error(message: impl Into<String>) -> ParamError {
    ParamError {
        param: "storage",
        message: message.into(),
    }
}

impl Storage {
    /// The default when `storage` is not set: LMDB under Kamailio's runtime
    /// directory (`-Y`, default /var/run/kamailio).
    pub fn default_under(runtime_dir: &str) -> Storage {
        Storage::Lmdb {
            dir: PathBuf::from(runtime_dir).join("topos_rs"),
        }
    }

    /// Parses the `storage` parameter.
    pub fn parse(value: &str) -> Result<Storage, ParamError> {
        let value = value.trim();
        if let Some(dir) = value.strip_prefix("lmdb:") {
            if dir.is_empty() {
                return Err(storage_error(
                    "\"lmdb:\" needs a directory, e.g. lmdb:/var/lib/kamailio/topos_rs",
                ));
            }
            if dir.contains('\0') {
                return Err(storage_error("directory contains a NUL byte"));
            }
            return Ok(Storage::Lmdb {
                dir: PathBuf::from(dir),
            });
        }
        for (scheme, tls, kind) in SCHEMES {
            if let Some(rest) = value.strip_prefix(scheme) {
                return Ok(Storage::Redis {
                    url: value.to_string(),
                    redis: parse_redis(scheme, rest, *tls, *kind)?,
                });
            }
        }
        Err(storage_error(format!(
            "{value:?} is neither lmdb:<dir> nor redis://[user:password@]host:port/db \
             (nor rediss://, redis+sentinel://, redis+cluster://)"
        )))
    }
}

impl RedisUrl {
    /// The URL the Redis client is given for one server: the scheme
    /// (`redis://` or `rediss://`), the credentials as written, the node
    /// and the database.
    pub fn node_url(&self, node: &RedisNode, with_auth: bool, db: u32) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        match self.auth.as_deref().filter(|_| with_auth) {
            Some(auth) => format!("{scheme}://{auth}@{node}/{db}"),
            None => format!("{scheme}://{node}/{db}"),
        }
    }

    /// The servers named in the URL, for the log: `host:port` of one
    /// server, `sentinels h1:p1,h2:p2 (master m)`, `cluster nodes h1:p1,...`.
    pub fn describe_servers(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.to_string()).collect();
        let nodes = nodes.join(",");
        match &self.mode {
            RedisMode::Single => nodes,
            RedisMode::Sentinel { master } => format!("sentinels {nodes} (master {master})"),
            RedisMode::Cluster => format!("cluster nodes {nodes}"),
        }
    }

    /// The URL without credentials, for the log.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.to_string()).collect();
        let nodes = nodes.join(",");
        let s = if self.tls { "s" } else { "" };
        match &self.mode {
            RedisMode::Single => format!("redis{s}://{nodes}/{}", self.db),
            RedisMode::Sentinel { master } => {
                format!("redis{s}+sentinel://{nodes}/{master}/{}", self.db)
            }
            RedisMode::Cluster => format!("redis{s}+cluster://{nodes}"),
        }
    }
}

fn parse_redis(scheme: &str, rest: &str, tls: bool, kind: Kind) -> Result<RedisUrl, ParamError> {
    // The password may hold '@' and '/': the credentials end at the last '@'.
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a.to_string()), h),
        None => (None, rest),
    };
    let (hosts, path) = match hostpart.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (hostpart, None),
    };
    let default_port = if kind == Kind::Sentinel { 26379 } else { 6379 };
    let nodes = parse_nodes(hosts, default_port)?;
    let (mode, db) = match kind {
        Kind::Single => {
            if nodes.len() > 1 {
                return Err(storage_error(format!(
                    "{scheme} takes one host, not {}: for several use {}+sentinel:// or {}+cluster://",
                    nodes.len(),
                    scheme.trim_end_matches("://"),
                    scheme.trim_end_matches("://")
                )));
            }
            (RedisMode::Single, parse_db(path.unwrap_or(""))?)
        }
        Kind::Sentinel => {
            let (master, db) = match path {
                Some(p) => match p.split_once('/') {
                    Some((m, db)) => (m, db),
                    None => (p, ""),
                },
                None => ("", ""),
            };
            if master.is_empty() {
                return Err(storage_error(format!(
                    "{scheme} needs a master name: {scheme}[user:password@]host:port,host:port/<master name>/<db>"
                )));
            }
            if master.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(storage_error(format!(
                    "master name {master:?} has a space or control character"
                )));
            }
            (
                RedisMode::Sentinel {
                    master: master.to_string(),
                },
                parse_db(db)?,
            )
        }
        Kind::Cluster => {
            let db = parse_db(path.unwrap_or(""))?;
            if db != 0 {
                return Err(storage_error(format!(
                    "Redis Cluster has only database 0, not {db}"
                )));
            }
            (RedisMode::Cluster, 0)
        }
    };
    Ok(RedisUrl {
        mode,
        tls,
        auth,
        nodes,
        db,
    })
}

fn parse_db(db: &str) -> Result<u32, ParamError> {
    if db.is_empty() {
        return Ok(0);
    }
    db.parse()
        .map_err(|_| storage_error(format!("Redis database {db:?} is not a number")))
}

/// `host[:port],host[:port],...` (IPv6 in brackets).
fn parse_nodes(list: &str, default_port: u16) -> Result<Vec<RedisNode>, ParamError> {
    if list.trim().is_empty() {
        return Err(storage_error("no Redis host in the URL"));
    }
    list.split(',')
        .map(|item| parse_node(item.trim(), default_port))
        .collect()
}

fn parse_node(addr: &str, default_port: u16) -> Result<RedisNode, ParamError> {
    if addr.is_empty() {
        return Err(storage_error("empty host in the Redis host list"));
    }
    let (host, port) = if let Some(v6) = addr.strip_prefix('[') {
        let (h, p) = v6
            .split_once(']')
            .ok_or_else(|| storage_error(format!("unterminated [IPv6] Redis host {addr:?}")))?;
        if !p.is_empty() && !p.starts_with(':') {
            return Err(storage_error(format!(
                "{addr:?} is not host:port (text after ])"
            )));
        }
        (h.to_string(), p.strip_prefix(':').unwrap_or(""))
    } else {
        match addr.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (addr.to_string(), ""),
        }
    };
    if host.is_empty() {
        return Err(storage_error(format!("Redis host is empty in {addr:?}")));
    }
    let host_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b));
    if !host_ok {
        return Err(storage_error(format!(
            "Redis host {host:?} is not a host name or address"
        )));
    }
    let port: u16 = if port.is_empty() {
        default_port
    } else {
        port.parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| storage_error(format!("Redis port {port:?} is not 1-65535")))?
    };
    Ok(RedisNode { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(value: &str) -> RedisUrl {
        match Storage::parse(value) {
            Ok(Storage::Redis { url, redis }) => {
                assert_eq!(url, value);
                redis
            }
            other => panic!("{value}: {other:?}"),
        }
    }

    fn node(host: &str, port: u16) -> RedisNode {
        RedisNode {
            host: host.into(),
            port,
        }
    }

    fn error(value: &str) -> String {
        let e = Storage::parse(value).unwrap_err();
        assert_eq!(e.param, "storage", "{value}");
        e.to_string()
    }

    #[test]
    fn lmdb_directory() {
        assert_eq!(
            Storage::parse("lmdb:/var/lib/topos").unwrap(),
            Storage::Lmdb {
                dir: "/var/lib/topos".into()
            }
        );
        assert_eq!(
            Storage::default_under("/var/run/kamailio"),
            Storage::Lmdb {
                dir: "/var/run/kamailio/topos_rs".into()
            }
        );
    }

    #[test]
    fn single_server_urls() {
        assert_eq!(
            redis("redis://127.0.0.1:6379/0"),
            RedisUrl {
                mode: RedisMode::Single,
                tls: false,
                auth: None,
                nodes: vec![node("127.0.0.1", 6379)],
                db: 0
            }
        );
        let r = redis("redis://u:p@w@localhost:7000/3");
        assert_eq!(r.auth.as_deref(), Some("u:p@w"));
        assert_eq!((r.nodes, r.db), (vec![node("localhost", 7000)], 3));
        let r = redis("redis://[::1]/2");
        assert_eq!((r.nodes.clone(), r.db), (vec![node("::1", 6379)], 2));
        assert_eq!(r.describe(), "redis://[::1]:6379/2");
        let r = redis("rediss://secret@cache.example:6380");
        assert!(r.tls);
        assert_eq!(r.describe(), "rediss://cache.example:6380/0");
        assert_eq!(
            r.node_url(&r.nodes[0], true, 0),
            "rediss://secret@cache.example:6380/0"
        );
    }

    #[test]
    fn sentinel_urls() {
        let r = redis("redis+sentinel://u:pw@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/2");
        assert_eq!(
            r,
            RedisUrl {
                mode: RedisMode::Sentinel {
                    master: "mymaster".into()
                },
                tls: false,
                auth: Some("u:pw".into()),
                nodes: vec![
                    node("10.0.0.1", 26379),
                    node("10.0.0.2", 26379),
                    node("::1", 26380)
                ],
                db: 2
            }
        );
        assert_eq!(
            r.describe(),
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,[::1]:26380/mymaster/2"
        );
        // Sentinels are asked without the credentials, the master with them.
        assert_eq!(
            r.node_url(&r.nodes[0], false, 0),
            "redis://10.0.0.1:26379/0"
        );
        assert_eq!(
            r.node_url(&node("10.0.0.9", 6379), true, 2),
            "redis://u:pw@10.0.0.9:6379/2"
        );
        let r = redis("rediss+sentinel://h1:1/m");
        assert!(r.tls);
        assert_eq!(r.db, 0);
    }

    #[test]
    fn cluster_urls() {
        let r = redis("redis+cluster://pw@n1:7000, n2:7001 ,n3");
        assert_eq!(
            r,
            RedisUrl {
                mode: RedisMode::Cluster,
                tls: false,
                auth: Some("pw".into()),
                nodes: vec![node("n1", 7000), node("n2", 7001), node("n3", 6379)],
                db: 0
            }
        );
        assert_eq!(r.describe(), "redis+cluster://n1:7000,n2:7001,n3:6379");
        assert_eq!(redis("rediss+cluster://n1:7000/0").nodes.len(), 1);
    }

    #[test]
    fn each_malformed_url_says_what_is_wrong() {
        for (value, message) in [
            ("", "\"\" is neither lmdb:<dir> nor redis://"),
            ("lmdb:", "\"lmdb:\" needs a directory"),
            ("mysql://x", "\"mysql://x\" is neither lmdb:<dir> nor redis://"),
            ("redis+sentinels://h/m", "is neither lmdb:<dir> nor redis://"),
            ("redis://", "no Redis host in the URL"),
            ("redis://h:0/0", "Redis port \"0\" is not 1-65535"),
            ("redis://h:99999/0", "Redis port \"99999\" is not 1-65535"),
            ("redis://h:1/x", "Redis database \"x\" is not a number"),
            ("redis://[::1/0", "unterminated [IPv6] Redis host \"[::1\""),
            ("redis://[::1]x/0", "\"[::1]x\" is not host:port"),
            ("redis://:6379/0", "Redis host is empty in \":6379\""),
            ("redis://a b:1/0", "Redis host \"a b\" is not a host name or address"),
            (
                "redis://h1:1,h2:2/0",
                "redis:// takes one host, not 2: for several use redis+sentinel:// or redis+cluster://",
            ),
            (
                "redis+sentinel://h1:1,h2:2",
                "redis+sentinel:// needs a master name: redis+sentinel://[user:password@]host:port,host:port/<master name>/<db>",
            ),
            ("redis+sentinel://h1:1,h2:2//0", "needs a master name"),
            ("redis+sentinel:///m/0", "no Redis host in the URL"),
            ("redis+sentinel://h1:1,,h3:3/m/0", "empty host in the Redis host list"),
            ("redis+sentinel://h1:1,h2:x/m/0", "Redis port \"x\" is not 1-65535"),
            ("redis+sentinel://h1/m/zero", "Redis database \"zero\" is not a number"),
            ("redis+sentinel://h1/m m/0", "master name \"m m\" has a space"),
            ("redis+cluster://", "no Redis host in the URL"),
            ("redis+cluster://n1:7000,", "empty host in the Redis host list"),
            ("redis+cluster://n1:7000/3", "Redis Cluster has only database 0, not 3"),
            ("rediss+cluster://n1:70000", "Redis port \"70000\" is not 1-65535"),
        ] {
            let e = error(value);
            assert!(
                e.starts_with("modparam \"storage\": ") && e.contains(message),
                "{value:?}: {e}"
            );
        }
    }
}
