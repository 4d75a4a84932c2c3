//! Module parameters, parsed and validated without Kamailio so that every
//! rule is unit-tested. A bad value stops start-up with a message that names
//! the parameter.

use crate::billing::tariff::parse_money;
use crate::billing::{rates::RateTable, BillingConfig, CdrSink};
use std::ffi::CStr;
use std::path::PathBuf;
use std::time::Duration;

mod storage;
pub use storage::{RedisMode, RedisNode, RedisTls, RedisUrl, Storage};

/// A parameter value that cannot be used; the text is shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "modparam \"{}\": {}", self.param, self.message)
    }
}

impl std::error::Error for ParamError {}

/// Every module parameter, with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleConfig {
    /// None until set: the default depends on Kamailio's runtime directory.
    pub storage: Option<Storage>,
    pub lmdb_map_size_mib: usize,
    pub redis_timeout: Duration,
    /// PEM files for `rediss` URLs (read by `finalize` into `redis_tls`).
    pub redis_tls_ca: Option<PathBuf>,
    pub redis_tls_cert: Option<PathBuf>,
    pub redis_tls_key: Option<PathBuf>,
    pub redis_tls: RedisTls,
    pub billing: BillingConfig,
    /// The callee side sees a different Call-ID.
    pub mask_callid: bool,
    /// In-dialog requests must also come from the address each side was
    /// seen from (its INVITE's or its 2xx's source IP).
    pub bind_source: bool,
    /// In-dialog requests to a side without a route set go to the address
    /// that side's messages came from (NATed user agents).
    pub route_to_source: bool,
    /// `host[:port]` for masked Contacts; None = the receiving socket.
    pub contact_host: Option<String>,
    /// Lifetime of a dialog's records without in-dialog traffic.
    pub dialog_expire: Duration,
    /// What a masked Contact's user part holds (`contact_mode`).
    pub contact_mode: ContactMode,
    /// The URI parameter that carries the token when the user part does
    /// not (`contact_param`).
    pub contact_param: String,
    /// Kamailio sockets whose side is trusted: messages to it leave
    /// unhidden (`trusted_socket`, repeatable).
    pub trusted_sockets: Vec<TrustedSocket>,
    /// What a dialog token is: its routing state, sealed (no store on the
    /// routing path), or a key to a record in the store.
    pub token_mode: TokenMode,
    /// The key file (None: a key the module makes in its runtime directory).
    pub token_key_file: Option<PathBuf>,
}

/// `token_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// A token carries its side's routing state, sealed with the key file's
    /// first key: routing reads no store.
    Sealed,
    /// A token names a dialog record in the store (versions before 0.3).
    Stored,
}

/// `contact_mode`: what the user part of a masked Contact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactMode {
    /// 0: the token (`sip:TOKEN@host`).
    Token,
    /// 1: the party's own user part; the token goes into the URI
    /// parameter `contact_param` (`sip:alice@host;tps=TOKEN`).
    OwnUser,
}

/// Transports a Kamailio socket listens with (`listen=proto:ip:port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketProto {
    Udp,
    Tcp,
    Tls,
    Sctp,
}

impl SocketProto {
    pub fn name(self) -> &'static str {
        match self {
            SocketProto::Udp => "udp",
            SocketProto::Tcp => "tcp",
            SocketProto::Tls => "tls",
            SocketProto::Sctp => "sctp",
        }
    }
}

/// One `trusted_socket` value: a socket Kamailio listens on, written as
/// in `listen=` (`udp:10.0.0.1:5060`, `tls:[2001:db8::1]:5061`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedSocket {
    pub proto: SocketProto,
    /// The address without IPv6 brackets.
    pub ip: std::net::IpAddr,
    pub port: u16,
}

impl std::fmt::Display for TrustedSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            std::net::IpAddr::V4(ip) => write!(f, "{}:{ip}:{}", self.proto.name(), self.port),
            std::net::IpAddr::V6(ip) => write!(f, "{}:[{ip}]:{}", self.proto.name(), self.port),
        }
    }
}

impl TrustedSocket {
    /// Parses `proto:ip:port`.
    pub fn parse(v: &str) -> Result<TrustedSocket, ParamError> {
        let bad = |why: &str| {
            param_error(
                "trusted_socket",
                format!("{v:?} is not proto:ip:port ({why}), e.g. udp:10.0.0.1:5060"),
            )
        };
        let v = v.trim();
        let (proto, rest) = v.split_once(':').ok_or_else(|| bad("no protocol"))?;
        let proto = match proto.to_ascii_lowercase().as_str() {
            "udp" => SocketProto::Udp,
            "tcp" => SocketProto::Tcp,
            "tls" => SocketProto::Tls,
            "sctp" => SocketProto::Sctp,
            _ => return Err(bad("the protocol is none of udp, tcp, tls, sctp")),
        };
        let (ip, port) = rest.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let ip = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip);
        let ip: std::net::IpAddr = ip
            .parse()
            .map_err(|_| bad("the address is not an IP address"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port is not 1-65535"))?;
        Ok(TrustedSocket { proto, ip, port })
    }
}

impl Default for ModuleConfig {
    fn default() -> Self {
        ModuleConfig {
            storage: None,
            lmdb_map_size_mib: 256,
            redis_timeout: Duration::from_millis(250),
            redis_tls_ca: None,
            redis_tls_cert: None,
            redis_tls_key: None,
            redis_tls: RedisTls::default(),
            billing: BillingConfig::default(),
            mask_callid: false,
            bind_source: false,
            route_to_source: false,
            contact_host: None,
            dialog_expire: Duration::from_secs(10800),
            contact_mode: ContactMode::Token,
            contact_param: "tps".to_string(),
            trusted_sockets: Vec::new(),
            token_mode: TokenMode::Sealed,
            token_key_file: None,
        }
    }
}

/// How a parameter's value arrives (`modparam` with a number or a string)
/// and what applies it to the configuration.
#[derive(Clone, Copy)]
pub enum ParamSetter {
    Int(fn(&mut ModuleConfig, i64) -> Result<(), ParamError>),
    Text(fn(&mut ModuleConfig, &str) -> Result<(), ParamError>),
}

/// One module parameter, declared once: Kamailio's parameter table
/// (`ffi::module_params`) is built from it, and a test checks README.md's
/// Parameters table against it.
pub struct ParamSpec {
    pub name: &'static CStr,
    pub setter: ParamSetter,
    /// The "type" column of README.md's table.
    pub doc_type: &'static str,
    /// The "default" column of README.md's table.
    pub doc_default: &'static str,
    /// What the parameter is for, in one line.
    pub doc: &'static str,
}

use ParamSetter::{Int, Text};

/// Every module parameter, in README.md's order.
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: c"storage",
        setter: Text(ModuleConfig::set_storage),
        doc_type: "string",
        doc_default: "lmdb:<runtime dir>/topos_rs",
        doc: "Where dialog and billing state is kept: LMDB on this host or a shared Redis.",
    },
    ParamSpec {
        name: c"lmdb_map_size",
        setter: Int(ModuleConfig::set_lmdb_map_size),
        doc_type: "int (MiB)",
        doc_default: "256",
        doc: "Size of the LMDB memory map: the most the store can hold.",
    },
    ParamSpec {
        name: c"redis_timeout",
        setter: Int(ModuleConfig::set_redis_timeout),
        doc_type: "int (ms)",
        doc_default: "250",
        doc: "Bound for connecting to, writing to and reading from Redis.",
    },
    ParamSpec {
        name: c"redis_tls_ca",
        setter: Text(ModuleConfig::set_redis_tls_ca),
        doc_type: "string (path)",
        doc_default: "none",
        doc: "PEM file of the CA that signed the Redis servers' certificates (rediss URLs).",
    },
    ParamSpec {
        name: c"redis_tls_cert",
        setter: Text(ModuleConfig::set_redis_tls_cert),
        doc_type: "string (path)",
        doc_default: "none",
        doc: "PEM client certificate for Redis servers that check clients (with redis_tls_key).",
    },
    ParamSpec {
        name: c"redis_tls_key",
        setter: Text(ModuleConfig::set_redis_tls_key),
        doc_type: "string (path)",
        doc_default: "none",
        doc: "PEM private key of redis_tls_cert.",
    },
    ParamSpec {
        name: c"billing_rate",
        setter: Text(ModuleConfig::set_billing_rate),
        doc_type: "string (decimal)",
        doc_default: "0.05",
        doc: "Price per second when no rates-file prefix matches.",
    },
    ParamSpec {
        name: c"billing_currency",
        setter: Text(ModuleConfig::set_billing_currency),
        doc_type: "string",
        doc_default: "元",
        doc: "Printed after the cost.",
    },
    ParamSpec {
        name: c"billing_decimals",
        setter: Int(ModuleConfig::set_billing_decimals),
        doc_type: "int",
        doc_default: "2",
        doc: "Decimals of the cost.",
    },
    ParamSpec {
        name: c"billing_increment",
        setter: Text(ModuleConfig::set_billing_increment),
        doc_type: "string `first/next`",
        doc_default: "1/1",
        doc: "Billing blocks in seconds: the first, then the next ones.",
    },
    ParamSpec {
        name: c"billing_connect_fee",
        setter: Text(ModuleConfig::set_billing_connect_fee),
        doc_type: "string (decimal)",
        doc_default: "0",
        doc: "Added to every answered call.",
    },
    ParamSpec {
        name: c"billing_rates_file",
        setter: Text(ModuleConfig::set_billing_rates_file),
        doc_type: "string (path)",
        doc_default: "none",
        doc: "CSV of rates per number prefix.",
    },
    ParamSpec {
        name: c"billing_cdr",
        setter: Text(ModuleConfig::set_billing_cdr),
        doc_type: "string",
        doc_default: "empty",
        doc: "Where CDRs go besides the log line: a file or a Redis stream.",
    },
    ParamSpec {
        name: c"mask_callid",
        setter: Int(ModuleConfig::set_mask_callid),
        doc_type: "int 0/1",
        doc_default: "0",
        doc: "1: the callee side sees a different Call-ID.",
    },
    ParamSpec {
        name: c"route_to_source",
        setter: Int(ModuleConfig::set_route_to_source),
        doc_type: "int 0/1",
        doc_default: "0",
        doc: "1: in-dialog requests to a side without a route set go to its source address.",
    },
    ParamSpec {
        name: c"bind_source",
        setter: Int(ModuleConfig::set_bind_source),
        doc_type: "int 0/1",
        doc_default: "0",
        doc: "1: in-dialog requests must also come from the IP address their side was seen from.",
    },
    ParamSpec {
        name: c"dialog_expire",
        setter: Int(ModuleConfig::set_dialog_expire),
        doc_type: "int (s)",
        doc_default: "10800",
        doc: "Lifetime of a dialog's records without in-dialog traffic.",
    },
    ParamSpec {
        name: c"contact_host",
        setter: Text(ModuleConfig::set_contact_host),
        doc_type: "string `host[:port]`",
        doc_default: "the receiving socket",
        doc: "Host in the masked Contacts.",
    },
    ParamSpec {
        name: c"contact_mode",
        setter: Int(ModuleConfig::set_contact_mode),
        doc_type: "int 0/1",
        doc_default: "0",
        doc: "0: the token is a masked Contact's user part; 1: the party's own user part is kept and the token goes into a URI parameter.",
    },
    ParamSpec {
        name: c"contact_param",
        setter: Text(ModuleConfig::set_contact_param),
        doc_type: "string",
        doc_default: "tps",
        doc: "Name of the URI parameter that carries the token.",
    },
    ParamSpec {
        name: c"trusted_socket",
        setter: Text(ModuleConfig::add_trusted_socket),
        doc_type: "string `proto:ip:port`, repeatable",
        doc_default: "none",
        doc: "A socket whose side is trusted: messages that leave towards it are not hidden.",
    },
    ParamSpec {
        name: c"token_mode",
        setter: Text(ModuleConfig::set_token_mode),
        doc_type: "string `sealed`/`stored`",
        doc_default: "sealed",
        doc: "What a dialog token is: its routing state, sealed, or a key to a stored record.",
    },
    ParamSpec {
        name: c"token_key_file",
        setter: Text(ModuleConfig::set_token_key_file),
        doc_type: "string (path)",
        doc_default: "none",
        doc: "File of 256-bit hex keys that seal tokens: the first seals, every one opens.",
    },
];

/// An integer parameter within `min..=max`.
pub fn int_param(
    param: &'static str,
    value: i64,
    min: i64,
    max: i64,
    unit: &str,
) -> Result<i64, ParamError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ParamError {
            param,
            message: format!("{value} is outside {min}..{max} {unit}"),
        })
    }
}

/// A path parameter: empty means none.
fn path_param(v: &str) -> Option<PathBuf> {
    let v = v.trim();
    (!v.is_empty()).then(|| PathBuf::from(v))
}

fn param_error(param: &'static str, message: impl Into<String>) -> ParamError {
    ParamError {
        param,
        message: message.into(),
    }
}

impl ModuleConfig {
    pub fn set_storage(&mut self, v: &str) -> Result<(), ParamError> {
        self.storage = Some(Storage::parse(v)?);
        Ok(())
    }

    pub fn set_mask_callid(&mut self, v: i64) -> Result<(), ParamError> {
        self.mask_callid = int_param("mask_callid", v, 0, 1, "(0 or 1)")? == 1;
        Ok(())
    }

    pub fn set_bind_source(&mut self, v: i64) -> Result<(), ParamError> {
        self.bind_source = int_param("bind_source", v, 0, 1, "(0 or 1)")? == 1;
        Ok(())
    }

    pub fn set_route_to_source(&mut self, v: i64) -> Result<(), ParamError> {
        self.route_to_source = int_param("route_to_source", v, 0, 1, "(0 or 1)")? == 1;
        Ok(())
    }

    pub fn set_dialog_expire(&mut self, v: i64) -> Result<(), ParamError> {
        self.dialog_expire =
            Duration::from_secs(int_param("dialog_expire", v, 10, 7 * 86_400, "seconds")? as u64);
        Ok(())
    }

    pub fn set_token_mode(&mut self, v: &str) -> Result<(), ParamError> {
        self.token_mode = match v.trim() {
            "sealed" => TokenMode::Sealed,
            "stored" => TokenMode::Stored,
            other => {
                return Err(param_error(
                    "token_mode",
                    format!("{other:?} is neither \"sealed\" nor \"stored\""),
                ))
            }
        };
        Ok(())
    }

    /// The file is read at start-up (`finalize`), where a missing or bad
    /// file stops it.
    pub fn set_token_key_file(&mut self, v: &str) -> Result<(), ParamError> {
        let v = v.trim();
        self.token_key_file = (!v.is_empty()).then(|| PathBuf::from(v));
        Ok(())
    }

    pub fn set_contact_host(&mut self, v: &str) -> Result<(), ParamError> {
        let v = v.trim();
        let ok = !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !ok {
            return Err(param_error(
                "contact_host",
                format!("{v:?} is not host[:port]"),
            ));
        }
        self.contact_host = Some(v.to_string());
        Ok(())
    }

    pub fn set_contact_mode(&mut self, v: i64) -> Result<(), ParamError> {
        self.contact_mode = match int_param("contact_mode", v, 0, 1, "(0 or 1)")? {
            0 => ContactMode::Token,
            _ => ContactMode::OwnUser,
        };
        Ok(())
    }

    /// A URI parameter name: letters, digits and `-_.!~*'` (a subset of
    /// RFC 3261's `pname` that needs no escaping anywhere). Never empty:
    /// the token goes into it whenever the user part shows something else
    /// (`contact_mode` 1, a user set by `topos_set_contact()`, a trusted
    /// side shown real Contacts).
    pub fn set_contact_param(&mut self, v: &str) -> Result<(), ParamError> {
        let v = v.trim();
        if v.is_empty() {
            return Err(param_error(
                "contact_param",
                "empty: the token needs a URI parameter name (contact_mode 1, a user part \
                 set by topos_set_contact(), a trusted side shown real Contacts)",
            ));
        }
        let pname = |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'".contains(&b);
        if v.len() > 32 || !v.bytes().all(pname) {
            return Err(param_error(
                "contact_param",
                format!(
                    "{v:?} is not a URI parameter name (letters, digits and -_.!~*', at most 32)"
                ),
            ));
        }
        self.contact_param = v.to_string();
        Ok(())
    }

    /// One more trusted socket (the parameter may be given several times).
    pub fn add_trusted_socket(&mut self, v: &str) -> Result<(), ParamError> {
        let socket = TrustedSocket::parse(v)?;
        if !self.trusted_sockets.contains(&socket) {
            self.trusted_sockets.push(socket);
        }
        Ok(())
    }

    pub fn set_billing_rate(&mut self, v: &str) -> Result<(), ParamError> {
        self.billing.default.rate =
            parse_money("rate", v).map_err(|m| param_error("billing_rate", m))?;
        Ok(())
    }

    pub fn set_billing_connect_fee(&mut self, v: &str) -> Result<(), ParamError> {
        self.billing.default.connect_fee =
            parse_money("connect fee", v).map_err(|m| param_error("billing_connect_fee", m))?;
        Ok(())
    }

    pub fn set_billing_increment(&mut self, v: &str) -> Result<(), ParamError> {
        self.billing.default.increment =
            v.parse().map_err(|m| param_error("billing_increment", m))?;
        Ok(())
    }

    pub fn set_billing_currency(&mut self, v: &str) -> Result<(), ParamError> {
        if v.trim().is_empty() || v.chars().any(char::is_control) {
            return Err(param_error(
                "billing_currency",
                format!("{v:?} is not a currency text"),
            ));
        }
        self.billing.currency = v.trim().to_string();
        Ok(())
    }

    pub fn set_billing_decimals(&mut self, v: i64) -> Result<(), ParamError> {
        self.billing.decimals = int_param("billing_decimals", v, 0, 8, "decimals")? as u32;
        Ok(())
    }

    pub fn set_billing_rates_file(&mut self, v: &str) -> Result<(), ParamError> {
        let v = v.trim();
        self.billing.rates_file = (!v.is_empty()).then(|| PathBuf::from(v));
        Ok(())
    }

    pub fn set_billing_cdr(&mut self, v: &str) -> Result<(), ParamError> {
        self.billing.cdr = CdrSink::parse(v).map_err(|m| param_error("billing_cdr", m))?;
        Ok(())
    }

    /// Checks that need every parameter (mod_init): the rates file is read
    /// now, with the final defaults for its empty columns.
    pub fn finalize(&mut self) -> Result<(), ParamError> {
        if let CdrSink::RedisStream(_) = self.billing.cdr {
            if !matches!(self.storage, Some(Storage::Redis { .. })) {
                return Err(param_error(
                    "billing_cdr",
                    "redis:<stream key> needs Redis storage (modparam storage redis://...)",
                ));
            }
        }
        self.load_redis_tls()?;
        if let Some(path) = &self.billing.rates_file {
            self.billing.rates = RateTable::load(path, &self.billing.default)
                .map_err(|e| param_error("billing_rates_file", e.to_string()))?;
        }
        Ok(())
    }

    pub fn set_lmdb_map_size(&mut self, mib: i64) -> Result<(), ParamError> {
        self.lmdb_map_size_mib = int_param("lmdb_map_size", mib, 1, 1 << 20, "MiB")? as usize;
        Ok(())
    }

    pub fn set_redis_tls_ca(&mut self, v: &str) -> Result<(), ParamError> {
        self.redis_tls_ca = path_param(v);
        Ok(())
    }

    pub fn set_redis_tls_cert(&mut self, v: &str) -> Result<(), ParamError> {
        self.redis_tls_cert = path_param(v);
        Ok(())
    }

    pub fn set_redis_tls_key(&mut self, v: &str) -> Result<(), ParamError> {
        self.redis_tls_key = path_param(v);
        Ok(())
    }

    /// Reads the TLS files: only for a `rediss` storage URL, a client
    /// certificate only with its key.
    fn load_redis_tls(&mut self) -> Result<(), ParamError> {
        let given = [
            ("redis_tls_ca", &self.redis_tls_ca),
            ("redis_tls_cert", &self.redis_tls_cert),
            ("redis_tls_key", &self.redis_tls_key),
        ];
        let on_tls = matches!(&self.storage, Some(Storage::Redis { redis, .. }) if redis.tls);
        if let Some((param, _)) = given.iter().find(|(_, p)| p.is_some()) {
            if !on_tls {
                return Err(param_error(
                    param,
                    "is for TLS to Redis: the storage URL must start with rediss",
                ));
            }
        }
        let read = |param: &'static str, path: &Option<PathBuf>| {
            path.as_ref()
                .map(|p| {
                    std::fs::read(p).map_err(|e| {
                        param_error(param, format!("cannot read {}: {e}", p.display()))
                    })
                })
                .transpose()
        };
        let ca = read("redis_tls_ca", &self.redis_tls_ca)?;
        let cert = read("redis_tls_cert", &self.redis_tls_cert)?;
        let key = read("redis_tls_key", &self.redis_tls_key)?;
        match (&cert, &key) {
            (Some(_), None) => {
                return Err(param_error("redis_tls_cert", "needs redis_tls_key too"))
            }
            (None, Some(_)) => {
                return Err(param_error("redis_tls_key", "needs redis_tls_cert too"))
            }
            _ => {}
        }
        // A file that is not what it should be is named now, not when the
        // first worker connects.
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certificates = |param: &'static str, pem: &Option<Vec<u8>>| match pem {
            Some(pem) if !CertificateDer::pem_slice_iter(pem).any(|c| c.is_ok()) => {
                Err(param_error(
                    param,
                    "has no PEM certificate (-----BEGIN CERTIFICATE-----)",
                ))
            }
            _ => Ok(()),
        };
        certificates("redis_tls_ca", &ca)?;
        certificates("redis_tls_cert", &cert)?;
        if let Some(k) = &key {
            PrivateKeyDer::from_pem_slice(k).map_err(|e| {
                param_error("redis_tls_key", format!("has no PEM private key: {e}"))
            })?;
        }
        let client = cert.zip(key);
        self.redis_tls = RedisTls { ca, client };
        Ok(())
    }

    pub fn set_redis_timeout(&mut self, ms: i64) -> Result<(), ParamError> {
        self.redis_timeout =
            Duration::from_millis(int_param("redis_timeout", ms, 1, 60_000, "ms")? as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of README.md's "## 3. Parameters" table: (name, type,
    /// default), backquotes removed from name and default. The table must be
    /// one table: no line inside it that is not a row.
    fn readme_parameter_rows() -> Vec<(String, String, String)> {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("reading README.md");
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("3. Parameters"))
            .expect("README.md has a section \"## 3. Parameters\"");
        let lines: Vec<&str> = section.lines().collect();
        let first = lines
            .iter()
            .position(|l| l.starts_with('|'))
            .expect("a table");
        let end = lines[first..]
            .iter()
            .position(|l| !l.starts_with('|'))
            .map_or(lines.len(), |n| first + n);
        assert!(
            !lines[end..].iter().any(|l| l.starts_with('|')),
            "README.md's Parameters table is split by a line that is not a row"
        );
        let unquote = |s: &str| s.trim().trim_matches('`').to_string();
        lines[first + 2..end]
            .iter()
            .map(|row| {
                let cells: Vec<&str> = row.split('|').collect();
                assert!(cells.len() >= 5, "short row in README.md: {row}");
                (
                    unquote(cells[1]),
                    cells[2].trim().to_string(),
                    unquote(cells[3]),
                )
            })
            .collect()
    }

    #[test]
    fn readme_lists_the_declared_parameters() {
        let declared: Vec<(String, String, String)> = PARAMS
            .iter()
            .map(|p| {
                (
                    p.name.to_str().unwrap().to_string(),
                    p.doc_type.to_string(),
                    p.doc_default.to_string(),
                )
            })
            .collect();
        assert_eq!(readme_parameter_rows(), declared);
    }

    #[test]
    fn declared_defaults_are_the_defaults() {
        for p in PARAMS {
            let mut c = ModuleConfig::default();
            let name = p.name.to_str().unwrap();
            // Defaults that are not a value of the parameter: chosen at
            // start-up (storage, contact_host) or the absence of one.
            // A repeatable parameter's default is no entry at all.
            if p.doc_type.ends_with("repeatable") {
                continue;
            }
            let value = match p.doc_default {
                "lmdb:<runtime dir>/topos_rs" | "the receiving socket" => continue,
                "none" | "empty" => "",
                v => v,
            };
            match p.setter {
                ParamSetter::Int(set) => set(&mut c, value.parse().unwrap()),
                ParamSetter::Text(set) => set(&mut c, value),
            }
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c, ModuleConfig::default(), "{name}");
            assert!(p.doc.ends_with('.'), "{name}: the doc is one sentence");
        }
    }

    #[test]
    fn integer_parameters_have_ranges() {
        let mut c = ModuleConfig::default();
        assert_eq!(c.lmdb_map_size_mib, 256);
        assert_eq!(c.redis_timeout, Duration::from_millis(250));
        c.set_lmdb_map_size(1024).unwrap();
        c.set_redis_timeout(100).unwrap();
        assert_eq!(c.lmdb_map_size_mib, 1024);
        assert_eq!(c.redis_timeout, Duration::from_millis(100));
        let e = c.set_lmdb_map_size(0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "modparam \"lmdb_map_size\": 0 is outside 1..1048576 MiB"
        );
        let e = c.set_redis_timeout(-5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "modparam \"redis_timeout\": -5 is outside 1..60000 ms"
        );
    }

    #[test]
    fn billing_parameters() {
        let mut c = ModuleConfig::default();
        assert_eq!(c.billing.default.rate.to_string(), "0.05");
        assert_eq!(c.billing.currency, "元");
        assert_eq!(c.billing.decimals, 2);
        c.set_billing_rate("0.10").unwrap();
        c.set_billing_connect_fee("0.5").unwrap();
        c.set_billing_increment("60/60").unwrap();
        c.set_billing_currency("EUR").unwrap();
        c.set_billing_decimals(3).unwrap();
        c.set_billing_cdr("file:/tmp/cdr.jsonl").unwrap();
        assert_eq!(c.billing.default.increment.to_string(), "60/60");
        for (r, param) in [
            (c.set_billing_rate("x"), "billing_rate"),
            (c.set_billing_connect_fee("-1"), "billing_connect_fee"),
            (c.set_billing_increment("60"), "billing_increment"),
            (c.set_billing_currency(""), "billing_currency"),
            (c.set_billing_decimals(9), "billing_decimals"),
            (c.set_billing_cdr("syslog"), "billing_cdr"),
        ] {
            assert_eq!(r.unwrap_err().param, param);
        }
    }

    #[test]
    fn dialog_parameters() {
        let mut c = ModuleConfig::default();
        assert!(!c.mask_callid);
        assert_eq!(c.dialog_expire, Duration::from_secs(10800));
        c.set_mask_callid(1).unwrap();
        c.set_dialog_expire(3600).unwrap();
        c.set_contact_host("203.0.113.7:5060").unwrap();
        assert!(c.mask_callid);
        assert_eq!(c.contact_host.as_deref(), Some("203.0.113.7:5060"));
        assert_eq!(c.set_mask_callid(2).unwrap_err().param, "mask_callid");
        assert!(!c.bind_source);
        c.set_bind_source(1).unwrap();
        assert!(c.bind_source);
        assert_eq!(c.set_bind_source(-1).unwrap_err().param, "bind_source");
        c.set_route_to_source(1).unwrap();
        assert!(c.route_to_source);
        assert_eq!(
            c.set_route_to_source(3).unwrap_err().param,
            "route_to_source"
        );
        assert_eq!(c.set_dialog_expire(0).unwrap_err().param, "dialog_expire");
        assert_eq!(c.set_contact_host("a b").unwrap_err().param, "contact_host");
        assert_eq!(c.set_contact_host("x@y").unwrap_err().param, "contact_host");
    }

    #[test]
    fn contact_parameters() {
        let mut c = ModuleConfig::default();
        assert_eq!(c.contact_mode, ContactMode::Token);
        assert_eq!(c.contact_param, "tps");
        c.set_contact_mode(1).unwrap();
        assert_eq!(c.contact_mode, ContactMode::OwnUser);
        assert_eq!(
            c.set_contact_mode(2).unwrap_err().to_string(),
            "modparam \"contact_mode\": 2 is outside 0..1 (0 or 1)"
        );
        c.set_contact_param("xyz").unwrap();
        assert_eq!(c.contact_param, "xyz");
        for bad in ["", "  ", "a b", "a;b", "a=b", "x>", "é"] {
            let e = c.set_contact_param(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("modparam \"contact_param\": "),
                "{bad:?}: {e}"
            );
        }
        assert_eq!(c.contact_param, "xyz");
    }

    #[test]
    fn trusted_sockets_repeat_and_are_checked() {
        let mut c = ModuleConfig::default();
        c.add_trusted_socket("udp:10.0.0.1:5060").unwrap();
        c.add_trusted_socket("TLS:[2001:db8::1]:5061").unwrap();
        c.add_trusted_socket("udp:10.0.0.1:5060").unwrap();
        let shown: Vec<String> = c.trusted_sockets.iter().map(|s| s.to_string()).collect();
        assert_eq!(shown, ["udp:10.0.0.1:5060", "tls:[2001:db8::1]:5061"]);
        for bad in [
            "",
            "10.0.0.1:5060",
            "ws:10.0.0.1:5060",
            "udp:10.0.0.1",
            "udp:host.example:5060",
            "udp:10.0.0.1:0",
            "udp:10.0.0.1:65536",
        ] {
            let e = c.add_trusted_socket(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("modparam \"trusted_socket\": "),
                "{bad:?}: {e}"
            );
        }
        assert_eq!(c.trusted_sockets.len(), 2);
    }

    #[test]
    fn finalize_checks_cross_parameter_rules() {
        let mut c = ModuleConfig {
            storage: Some(Storage::parse("lmdb:/tmp/x").unwrap()),
            ..ModuleConfig::default()
        };
        c.set_billing_cdr("redis:cdr").unwrap();
        assert_eq!(c.finalize().unwrap_err().param, "billing_cdr");
        c.storage = Some(Storage::parse("redis://127.0.0.1/0").unwrap());
        c.finalize().unwrap();

        let dir = std::env::temp_dir().join(format!("topos-rs-rates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rates.csv");
        std::fs::write(&file, "135,0.1\n136,oops\n").unwrap();
        c.set_billing_rates_file(file.to_str().unwrap()).unwrap();
        let e = c.finalize().unwrap_err();
        assert_eq!(e.param, "billing_rates_file");
        assert!(
            e.to_string()
                .contains(&format!("rates file {} line 2:", file.display())),
            "{e}"
        );
        std::fs::write(&file, "135,0.1\n").unwrap();
        c.finalize().unwrap();
        assert_eq!(c.billing.rates.len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn redis_tls_files_are_checked_at_start_up() {
        let dir = std::env::temp_dir().join(format!("topos-rs-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let junk = junk.to_str().unwrap();
        let with = |storage: &str, lines: &[(&str, &str)]| {
            let mut c = ModuleConfig {
                storage: Some(Storage::parse(storage).unwrap()),
                ..ModuleConfig::default()
            };
            for (param, value) in lines {
                match *param {
                    "ca" => c.set_redis_tls_ca(value),
                    "cert" => c.set_redis_tls_cert(value),
                    _ => c.set_redis_tls_key(value),
                }
                .unwrap();
            }
            c.finalize().map(|_| c.redis_tls)
        };
        assert_eq!(with("rediss://h:6380/0", &[]).unwrap(), RedisTls::default());
        for (storage, lines, expected) in [
            (
                "redis://h:6379/0",
                vec![("ca", junk)],
                "modparam \"redis_tls_ca\": is for TLS to Redis: the storage URL must start with rediss",
            ),
            (
                "rediss+cluster://h:7000",
                vec![("ca", "/nonexistent/ca.pem")],
                "modparam \"redis_tls_ca\": cannot read /nonexistent/ca.pem: No such file",
            ),
            (
                "rediss://h:6380/0",
                vec![("ca", junk)],
                "modparam \"redis_tls_ca\": has no PEM certificate",
            ),
            (
                "rediss+sentinel://h/m/0",
                vec![("cert", junk)],
                "modparam \"redis_tls_cert\": needs redis_tls_key too",
            ),
            (
                "rediss://h:6380/0",
                vec![("cert", junk), ("key", junk)],
                "modparam \"redis_tls_cert\": has no PEM certificate",
            ),
        ] {
            let e = with(storage, &lines).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{storage} {lines:?}: {e}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
