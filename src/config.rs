//! Settings: every environment variable in one place, documented and validated at start.
//!
//! Values come from the process environment, optionally from a `.env` file in the working
//! directory. Each variable `X` may instead be given as `X_FILE`, the path of a file holding the
//! value (for secrets mounted by an orchestrator); setting both is an error.
//!
//! Every variable, its default and meaning are in [`VARIABLES`]; `medlabel --help` prints
//! them, and a test checks that the list names every variable this file reads.
//!
//! Longer than ~400 lines on purpose: the point of this file is that every variable is here.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use base64::Engine as _;
use ipnet::IpNet;

use crate::pseudonym::PseudonymKey;

/// One environment variable: its name, its default (as the user would write it) and what it
/// does. Printed by `--help` ([`environment_help`]).
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: &'static str, meaning: &'static str) -> Variable {
    Variable {
        name,
        default,
        meaning,
    }
}

/// Every variable the service reads (besides `AWS_*` for S3 storage, read by `object_store`).
pub const VARIABLES: &[Variable] = &[
    var("DATABASE_URL", "sqlite://medlabel.db", "sqlite://PATH or postgres://... (libpq parameters such as sslmode=require work)"),
    var("STORAGE_URL", "file://./data/objects", "file://DIR, s3://bucket/prefix (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT for other S3 servers) or memory://"),
    var("MEDLABEL_BIND", "127.0.0.1:8080", "listen address (host:port)"),
    var("MEDLABEL_DATA_DIR", "./data", "where generated session and pseudonym keys are kept"),
    var("MEDLABEL_SESSION_KEY", "generated", "64+ random bytes, base64: signs and encrypts cookies; the same on every instance"),
    var("MEDLABEL_PSEUDONYM_KEY", "generated", "32+ random bytes, base64: subject pseudonyms; the same on every instance, for good"),
    var("MEDLABEL_SESSION_IDLE_SECS", "1800", "idle timeout of a session"),
    var("MEDLABEL_SESSION_MAX_SECS", "43200", "absolute lifetime of a session"),
    var("MEDLABEL_MAX_UPLOAD_BYTES", "1073741824", "largest image upload"),
    var("MEDLABEL_MAX_DICOM_HEADER_BYTES", "67108864", "how far into a DICOM upload its Pixel Data may start (413 beyond)"),
    var("MEDLABEL_MAX_JSON_BYTES", "1048576", "largest JSON body"),
    var("MEDLABEL_INSECURE_COOKIES", "0", "1: cookie `medlabel` without Secure (plain-HTTP development only)"),
    var("MEDLABEL_TRUSTED_PROXIES", "none", "comma-separated addresses/CIDRs whose forwarding headers are believed"),
    var("MEDLABEL_CORS_ORIGINS", "none (CORS off)", "comma-separated allowed origins"),
    var("MEDLABEL_METRICS_TOKEN", "none (/metrics off)", "16+ characters, no spaces: GET /metrics (Prometheus text) answers with Authorization: Bearer <this>"),
    var("MEDLABEL_DB_POOL_SIZE", "2 x CPUs, at least 4", "database connections per instance"),
    var("MEDLABEL_DB_BUSY_TIMEOUT_MS", "10000", "SQLite: how long a write waits for another process's lock before answering 503"),
    var("MEDLABEL_DB_STATEMENT_TIMEOUT_MS", "10000", "longest database work of one request (0: no limit); beyond it 503"),
    var("MEDLABEL_CODE_INDEX", "on", "off: code searches use the database instead of the in-memory index"),
    var("MEDLABEL_CODE_INDEX_POLL_MS", "1000", "how often the code index looks for other instances' changes (at least 50)"),
    var("MEDLABEL_ORPHAN_GRACE_SECS", "86400", "unreferenced storage objects older than this are removed (at start, then hourly)"),
    var("MEDLABEL_WORKERS", "CPU count", "HTTP worker threads"),
    var("MEDLABEL_LOG", "info", "tracing filter, e.g. medlabel=debug,info"),
    var("MEDLABEL_LOG_FORMAT", "text", "text for people (coloured on a terminal unless NO_COLOR is set), json for machines"),
];

/// The `--help` section listing [`VARIABLES`].
pub fn environment_help() -> String {
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut help = String::from(
        "Environment (also read from ./.env; any X may be given as X_FILE, a file holding the value):\n",
    );
    for v in VARIABLES {
        help.push_str(&format!(
            "  {:width$}  {} [default: {}]\n",
            v.name, v.meaning, v.default
        ));
    }
    help
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A value that must never be printed (Debug shows `[redacted]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(pub T);

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Secret<String>,
    pub storage_url: String,
    pub bind: String,
    pub data_dir: PathBuf,
    /// Raw key material (64+ bytes); `None` means "generate and keep one in `data_dir`".
    pub session_key: Option<Secret<Vec<u8>>>,
    /// The pseudonym key (32+ bytes); `None` means "generate and keep one in `data_dir`".
    pub pseudonym_key: Option<PseudonymKey>,
    pub session_idle_secs: u64,
    pub session_max_secs: u64,
    pub max_upload_bytes: u64,
    /// How far into a DICOM file (preamble and file meta included) its Pixel Data may start
    /// (413 beyond).
    pub max_dicom_header_bytes: u64,
    pub max_json_bytes: usize,
    pub insecure_cookies: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub cors_origins: Vec<String>,
    /// The bearer token `GET /metrics` requires; `None`: the endpoint answers 404.
    pub metrics_token: Option<Secret<String>>,
    pub db_pool_size: u32,
    /// SQLite's `busy_timeout`: how long a statement waits for a lock held by another process.
    pub db_busy_timeout_ms: u64,
    /// The longest a request's database work may run (PostgreSQL `statement_timeout`; on
    /// SQLite, checked by a progress handler), in milliseconds; 0 turns it off.
    pub db_statement_timeout_ms: u64,
    /// Whether code searches use the in-memory index (`MEDLABEL_CODE_INDEX=off`: the database).
    pub code_index: bool,
    /// How often the code index checks whether another instance changed the codes.
    pub code_index_poll_ms: u64,
    /// Age after which an object no row references is removed; longer than any upload takes.
    pub orphan_grace_secs: u64,
    pub workers: Option<usize>,
    pub log: String,
    pub log_format: LogFormat,
}

impl Settings {
    /// Reads `.env` (when present) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from any variable source (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| -> Result<Option<String>, ConfigError> {
            let file_var = format!("{name}_FILE");
            match (lookup(name), lookup(&file_var)) {
                (Some(_), Some(_)) => {
                    Err(ConfigError(format!("set {name} or {file_var}, not both")))
                }
                (Some(v), None) => Ok(Some(v)),
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map(|v| Some(v.trim_end_matches(['\n', '\r']).to_owned()))
                    .map_err(|e| ConfigError(format!("{file_var}: cannot read {path}: {e}"))),
                (None, None) => Ok(None),
            }
        };

        let database_url = get("DATABASE_URL")?.unwrap_or_else(|| "sqlite://medlabel.db".into());
        crate::db::DatabaseUrl::parse(&database_url)
            .map_err(|e| ConfigError(format!("DATABASE_URL {e}")))?;

        let storage_url = get("STORAGE_URL")?.unwrap_or_else(|| "file://./data/objects".into());
        if !["file://", "s3://", "memory://"]
            .iter()
            .any(|s| storage_url.starts_with(s))
        {
            return Err(ConfigError(
                "STORAGE_URL must start with file://, s3:// or memory://".into(),
            ));
        }

        let bind = get("MEDLABEL_BIND")?.unwrap_or_else(|| "127.0.0.1:8080".into());
        let resolvable = bind
            .to_socket_addrs()
            .map(|mut a| a.next().is_some())
            .unwrap_or(false);
        if bind.parse::<SocketAddr>().is_err() && !resolvable {
            return Err(ConfigError(format!(
                "MEDLABEL_BIND {bind:?} is not a host:port address"
            )));
        }

        let session_key = match get("MEDLABEL_SESSION_KEY")? {
            None => None,
            Some(encoded) => {
                Some(Secret(decode_session_key(&encoded).map_err(|e| {
                    ConfigError(format!("MEDLABEL_SESSION_KEY {e}"))
                })?))
            }
        };

        let pseudonym_key = match get("MEDLABEL_PSEUDONYM_KEY")? {
            None => None,
            Some(encoded) => Some(
                decode_pseudonym_key(&encoded)
                    .map_err(|e| ConfigError(format!("MEDLABEL_PSEUDONYM_KEY {e}")))?,
            ),
        };

        let session_idle_secs = number(
            get("MEDLABEL_SESSION_IDLE_SECS")?,
            "MEDLABEL_SESSION_IDLE_SECS",
            1800,
        )?;
        let session_max_secs = number(
            get("MEDLABEL_SESSION_MAX_SECS")?,
            "MEDLABEL_SESSION_MAX_SECS",
            43200,
        )?;
        if session_idle_secs == 0 || session_max_secs == 0 {
            return Err(ConfigError(
                "session timeouts must be at least 1 second".into(),
            ));
        }

        let trusted_proxies = list(get("MEDLABEL_TRUSTED_PROXIES")?)
            .into_iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "MEDLABEL_TRUSTED_PROXIES: {p:?} is not an address or CIDR"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let metrics_token = get("MEDLABEL_METRICS_TOKEN")?.filter(|t| !t.is_empty());
        if metrics_token
            .as_ref()
            .is_some_and(|t| t.len() < 16 || t.chars().any(char::is_whitespace))
        {
            return Err(ConfigError(
                "MEDLABEL_METRICS_TOKEN must be at least 16 characters without spaces".into(),
            ));
        }

        let cors_origins = list(get("MEDLABEL_CORS_ORIGINS")?);
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| *o == "*" || !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(ConfigError(format!(
                "MEDLABEL_CORS_ORIGINS: {bad:?} is not an origin like https://app.example.org (`*` is not allowed)"
            )));
        }

        let log_format = match get("MEDLABEL_LOG_FORMAT")?.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError(format!(
                    "MEDLABEL_LOG_FORMAT must be text or json, not {other:?}"
                )))
            }
        };

        let workers = match get("MEDLABEL_WORKERS")? {
            None => None,
            Some(v) => Some(number::<usize>(Some(v), "MEDLABEL_WORKERS", 1)?.max(1)),
        };

        Ok(Settings {
            database_url: Secret(database_url),
            storage_url,
            bind,
            data_dir: PathBuf::from(get("MEDLABEL_DATA_DIR")?.unwrap_or_else(|| "./data".into())),
            session_key,
            pseudonym_key,
            session_idle_secs,
            session_max_secs,
            max_upload_bytes: number(
                get("MEDLABEL_MAX_UPLOAD_BYTES")?,
                "MEDLABEL_MAX_UPLOAD_BYTES",
                1 << 30,
            )?,
            max_dicom_header_bytes: number(
                get("MEDLABEL_MAX_DICOM_HEADER_BYTES")?,
                "MEDLABEL_MAX_DICOM_HEADER_BYTES",
                64 << 20,
            )?,
            max_json_bytes: number(
                get("MEDLABEL_MAX_JSON_BYTES")?,
                "MEDLABEL_MAX_JSON_BYTES",
                1 << 20,
            )?,
            insecure_cookies: flag(
                get("MEDLABEL_INSECURE_COOKIES")?,
                "MEDLABEL_INSECURE_COOKIES",
            )?,
            trusted_proxies,
            cors_origins,
            metrics_token: metrics_token.map(Secret),
            db_pool_size: number(
                get("MEDLABEL_DB_POOL_SIZE")?,
                "MEDLABEL_DB_POOL_SIZE",
                default_pool_size(),
            )?
            .max(1),
            db_busy_timeout_ms: number(
                get("MEDLABEL_DB_BUSY_TIMEOUT_MS")?,
                "MEDLABEL_DB_BUSY_TIMEOUT_MS",
                10_000,
            )?,
            db_statement_timeout_ms: number(
                get("MEDLABEL_DB_STATEMENT_TIMEOUT_MS")?,
                "MEDLABEL_DB_STATEMENT_TIMEOUT_MS",
                10_000,
            )?,
            code_index: match get("MEDLABEL_CODE_INDEX")?.as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "MEDLABEL_CODE_INDEX must be on or off, not {other:?}"
                    )))
                }
            },
            code_index_poll_ms: number(
                get("MEDLABEL_CODE_INDEX_POLL_MS")?,
                "MEDLABEL_CODE_INDEX_POLL_MS",
                1_000,
            )?
            .max(50),
            orphan_grace_secs: number(
                get("MEDLABEL_ORPHAN_GRACE_SECS")?,
                "MEDLABEL_ORPHAN_GRACE_SECS",
                86_400,
            )?,
            workers,
            log: get("MEDLABEL_LOG")?.unwrap_or_else(|| "info".into()),
            log_format,
        })
    }

    /// The session key: the configured one, or one generated once and kept in `data_dir`.
    pub fn resolve_session_key(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(Secret(key)) = &self.session_key {
            return Ok(key.clone());
        }
        let (key, _) = self.kept_key(
            "session.key",
            "MEDLABEL_SESSION_KEY",
            64,
            decode_session_key,
        )?;
        Ok(key)
    }

    /// The pseudonym key: the configured one, or one generated once and kept in `data_dir`;
    /// with the path of the key file when it was generated just now (so that a start refused
    /// for using it can remove it again).
    pub fn resolve_pseudonym_key(&self) -> anyhow::Result<(PseudonymKey, Option<PathBuf>)> {
        if let Some(key) = &self.pseudonym_key {
            return Ok((key.clone(), None));
        }
        self.kept_key(
            "pseudonym.key",
            "MEDLABEL_PSEUDONYM_KEY",
            32,
            decode_pseudonym_key,
        )
    }

    /// The key kept in `data_dir/file`, or a new one of `bytes` random bytes written there
    /// (readable by the owner only) with a warning naming `variable`, and then its path.
    fn kept_key<K>(
        &self,
        file: &str,
        variable: &str,
        bytes: usize,
        decode: fn(&str) -> Result<K, String>,
    ) -> anyhow::Result<(K, Option<PathBuf>)> {
        let path = self.data_dir.join(file);
        if let Ok(encoded) = std::fs::read_to_string(&path) {
            return decode(encoded.trim())
                .map(|key| (key, None))
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
        }
        let mut key = vec![0u8; bytes];
        rand::fill(&mut key[..]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&key);
        std::fs::create_dir_all(&self.data_dir)?;
        write_private(&path, &encoded)?;
        tracing::warn!(
            path = %path.display(),
            "{variable} is not set: generated a key and kept it there. Instances behind one \
             load balancer must share {variable}; keep it safe."
        );
        decode(&encoded)
            .map(|key| (key, Some(path.clone())))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The cookie name: `__Host-medlabel`, or `medlabel` with insecure (plain-HTTP) cookies.
    pub fn cookie_name(&self) -> &'static str {
        if self.insecure_cookies {
            "medlabel"
        } else {
            "__Host-medlabel"
        }
    }
}

/// More connections than the CPUs can serve only queue inside the database and stretch the
/// latency tail (measured: p99 of 300 ms with 16 connections on 2 cores, 8 ms with 4).
fn default_pool_size() -> u32 {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2) as u32;
    (2 * cpus).max(4)
}

fn decode_session_key(encoded: &str) -> Result<Vec<u8>, String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "is not valid base64".to_owned())?;
    if key.len() < 64 {
        return Err(format!(
            "must hold at least 64 bytes, it holds {}",
            key.len()
        ));
    }
    Ok(key)
}

fn decode_pseudonym_key(encoded: &str) -> Result<PseudonymKey, String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "is not valid base64".to_owned())?;
    PseudonymKey::new(key)
}

fn number<T: std::str::FromStr>(
    value: Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            ConfigError(format!(
                "{name} must be a non-negative whole number, not {v:?}"
            ))
        }),
    }
}

fn flag(value: Option<String>, name: &str) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("") | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(other) => Err(ConfigError(format!("{name} must be 0 or 1, not {other:?}"))),
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url.0, "sqlite://medlabel.db");
        assert_eq!(s.storage_url, "file://./data/objects");
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert_eq!(s.session_idle_secs, 1800);
        assert_eq!(s.session_max_secs, 43200);
        assert_eq!(s.max_upload_bytes, 1 << 30);
        assert_eq!(s.cookie_name(), "__Host-medlabel");
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        for (var, value) in [
            ("DATABASE_URL", "mysql://x"),
            ("STORAGE_URL", "ftp://x"),
            ("MEDLABEL_BIND", "nowhere"),
            ("MEDLABEL_SESSION_KEY", "c2hvcnQ="),
            ("MEDLABEL_PSEUDONYM_KEY", "c2hvcnQ="),
            ("MEDLABEL_SESSION_IDLE_SECS", "ten"),
            ("MEDLABEL_LOG_FORMAT", "xml"),
            ("MEDLABEL_INSECURE_COOKIES", "yes please"),
            ("MEDLABEL_TRUSTED_PROXIES", "10.0.0.0/99"),
            ("MEDLABEL_CORS_ORIGINS", "*"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn file_variants_read_secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-url");
        std::fs::write(&path, "postgres://u:p@localhost/db\n").unwrap();
        let s = settings(&[("DATABASE_URL_FILE", path.to_str().unwrap())]).unwrap();
        assert_eq!(s.database_url.0, "postgres://u:p@localhost/db");
        let both = settings(&[
            ("DATABASE_URL", "sqlite://x.db"),
            ("DATABASE_URL_FILE", path.to_str().unwrap()),
        ]);
        assert!(both.is_err());
        assert!(
            !format!("{s:?}").contains("u:p"),
            "Debug must not show secrets"
        );
    }

    #[test]
    fn generated_session_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&[("MEDLABEL_DATA_DIR", dir.path().to_str().unwrap())]).unwrap();
        let first = s.resolve_session_key().unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(s.resolve_session_key().unwrap(), first);
        let (pseudonyms, generated) = s.resolve_pseudonym_key().unwrap();
        assert!(generated.is_some());
        let (again, kept) = s.resolve_pseudonym_key().unwrap();
        assert_eq!(again.fingerprint(), pseudonyms.fingerprint());
        assert!(kept.is_none());
        assert!(dir.path().join("pseudonym.key").exists());
    }

    #[test]
    fn every_variable_read_is_documented_and_every_documented_one_is_read() {
        let source = include_str!("config.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap()];
        let mut read = std::collections::BTreeSet::new();
        for part in code.split("get(\"").skip(1) {
            read.insert(part.split('"').next().unwrap().to_owned());
        }
        let listed: std::collections::BTreeSet<String> =
            VARIABLES.iter().map(|v| v.name.to_owned()).collect();
        assert!(read.len() >= 20, "found only {read:?}");
        assert_eq!(read, listed);
        let help = environment_help();
        assert!(VARIABLES.iter().all(|v| help.contains(v.name)));
    }
}
