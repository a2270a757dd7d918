//! Configuration: defaults, then an optional `switchboard.toml`, then environment variables.
//!
//! Every setting has a `SWITCHBOARD_*` variable named after its key (`bind` is `SWITCHBOARD_BIND`);
//! `DATABASE_URL`, `REDIS_URL` and `TWILIO_AUTH_TOKEN` are also accepted without the prefix, as
//! platforms set them. Secrets are held in `SecretString`, whose `Debug` prints `[REDACTED]`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::domain::{ForwardCountries, TwilioAccountSid};
use crate::outbound::OutboundAllow;
use crate::redis_client::RedisEndpoint;
use crate::storage::{Backend, redact_url};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/switchboard.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_TWILIO_API_BASE: &str = "https://api.twilio.com";
const CONFIG_FILE: &str = "switchboard.toml";

/// The raw settings as read, before cross-field checks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(deserialize_with = "lenient_string")]
    bind: String,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    public_url: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    database_url: String,
    #[serde(default)]
    database_max_connections: u32,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    redis_url: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    redis_cluster_urls: Vec<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    geoip_db: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    trusted_proxies: Vec<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    twilio_auth_token: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    twilio_account_sid: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    twilio_api_base: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    secrets_key: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    secrets_key_previous: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    log_format: String,
    #[serde(default)]
    migrate_on_start: Option<bool>,
    max_body_bytes: usize,
    shutdown_timeout_secs: u64,
    new_sessions_per_ip_per_minute: u32,
    pool_new_leases_per_minute: u64,
    lease_renewal_hold_minutes: i64,
    #[serde(deserialize_with = "lenient_string")]
    spool_dir: String,
    alert_interval_secs: u64,
    work_lease_secs: u64,
    #[serde(default, deserialize_with = "string_or_list")]
    forward_countries: Vec<String>,
    number_quarantine_days: u32,
    #[serde(default)]
    numbers_must_be_owned: bool,
    #[serde(default, deserialize_with = "string_or_list")]
    outbound_allow: Vec<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    outbound_proxy: Option<String>,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND.to_owned(),
            public_url: None,
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            database_max_connections: 10,
            redis_url: None,
            redis_cluster_urls: Vec::new(),
            geoip_db: None,
            trusted_proxies: Vec::new(),
            twilio_auth_token: None,
            twilio_account_sid: None,
            twilio_api_base: Some(DEFAULT_TWILIO_API_BASE.to_owned()),
            secrets_key: None,
            secrets_key_previous: None,
            log_format: "text".to_owned(),
            migrate_on_start: None,
            max_body_bytes: 64 * 1024,
            shutdown_timeout_secs: 30,
            new_sessions_per_ip_per_minute: 60,
            pool_new_leases_per_minute: 30,
            lease_renewal_hold_minutes: 90,
            spool_dir: "data/spool".to_owned(),
            alert_interval_secs: 15,
            work_lease_secs: crate::work::DEFAULT_TTL.as_secs(),
            forward_countries: Vec::new(),
            number_quarantine_days: 30,
            numbers_must_be_owned: false,
            outbound_allow: Vec::new(),
            outbound_proxy: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Checked settings. `Debug` is safe to log: secrets are redacted.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// The URL the world reaches the service at (Twilio signs requests against it). When not
    /// configured, the address the service binds (port 0 resolved once bound).
    pub public_url: Url,
    pub public_url_configured: bool,
    pub database_url: SecretString,
    pub database_max_connections: u32,
    pub redis_url: Option<SecretString>,
    /// Nodes of a Redis Cluster, instead of `redis_url` (the rest of the nodes are discovered).
    pub redis_cluster_urls: Vec<SecretString>,
    pub geoip_db: Option<PathBuf>,
    pub trusted_proxies: Vec<IpNet>,
    pub twilio_auth_token: Option<SecretString>,
    /// The operator's own Twilio account (the one `TWILIO_AUTH_TOKEN` serves): no account may
    /// connect it as its own.
    pub twilio_account_sid: Option<TwilioAccountSid>,
    /// Where an account's Twilio credentials are proven before they are stored (None: `off`,
    /// for hosts that cannot reach Twilio's API).
    pub twilio_api_base: Option<Url>,
    /// Seals the accounts' carrier tokens at rest (32 bytes, base64); `secrets_key_previous`
    /// still opens what the key before it sealed, during a rotation.
    pub secrets_key: Option<SecretString>,
    pub secrets_key_previous: Option<SecretString>,
    pub log_format: LogFormat,
    /// Apply migrations at start. Default: yes on SQLite, no on PostgreSQL (run `switchboard migrate`).
    pub migrate_on_start: bool,
    pub max_body_bytes: usize,
    pub shutdown_timeout_secs: u64,
    /// New visitor sessions one IP address may start per minute; past it, visitors see the
    /// default number (a pool cannot be drained by one client).
    pub new_sessions_per_ip_per_minute: u32,
    /// The least budget of new leases per session pool per minute (0: none); a pool's budget is
    /// the larger of this and ten turnovers of its numbers per lease length. Past it, a new
    /// visitor gets what an exhausted pool gives (a pool cannot be drained by many addresses).
    pub pool_new_leases_per_minute: u64,
    /// How long after a session's last page view renewals alone can keep its lease (a page
    /// left open is held this long; a client that only renews cannot hold a number forever).
    pub lease_renewal_hold_minutes: i64,
    /// This instance's own folder for the call spool (local disk; never shared).
    pub spool_dir: PathBuf,
    /// Seconds between evaluations of the alert rules.
    pub alert_interval_secs: u64,
    /// How long an instance's lease on a shard of shared background work lasts unrenewed: an
    /// instance that dies hands its work over this long after (`src/work.rs`).
    pub work_lease_secs: u64,
    /// The countries calls may be forwarded to; by default the property's own.
    pub forward_countries: ForwardCountries,
    /// Days a retired number stays with its account: nobody else can add it meanwhile (and so
    /// receive the account's former callers).
    pub number_quarantine_days: u32,
    /// Numbers added to pools must be owned by the account's Twilio account (or, for an account
    /// without one, the operator's), as Twilio's API says.
    pub numbers_must_be_owned: bool,
    /// Internal destinations outbound requests (webhooks, GA4) may reach nonetheless.
    pub outbound_allow: OutboundAllow,
    /// An egress proxy for every outbound request; may carry credentials.
    pub outbound_proxy: Option<SecretString>,
}

/// A setting that cannot be used, named as the operator wrote it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {variable} ({key}): {message}")]
    Invalid {
        variable: String,
        key: String,
        message: String,
    },
    #[error("configuration: {0}")]
    Read(String),
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        variable: format!("SWITCHBOARD_{}", key.to_ascii_uppercase()),
        key: key.to_owned(),
        message: message.into(),
    }
}

impl Settings {
    /// The number quarantine in ms.
    pub fn number_quarantine_ms(&self) -> i64 {
        i64::from(self.number_quarantine_days) * 86_400_000
    }

    /// Reads `switchboard.toml` (or the file named by `SWITCHBOARD_CONFIG`) and the environment.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("SWITCHBOARD_CONFIG").unwrap_or_else(|_| CONFIG_FILE.to_owned());
        Self::from_figment(
            Figment::from(Serialized::defaults(RawSettings::default()))
                .merge(Toml::file(file))
                .merge(Env::raw().only(&[
                    "DATABASE_URL",
                    "REDIS_URL",
                    "TWILIO_AUTH_TOKEN",
                    "TWILIO_ACCOUNT_SID",
                ]))
                .merge(Env::prefixed("SWITCHBOARD_").ignore(&["CONFIG", "LOG"])),
        )
    }

    /// Settings from explicit key/value pairs over the defaults (tests, the demo).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
        for (k, v) in pairs {
            // Parsed as the environment would be (`true` is a bool, `8` a number).
            let value: figment::value::Value = v.parse().expect("figment values always parse");
            figment = figment.merge(Serialized::default(k, value));
        }
        Self::from_figment(figment)
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawSettings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            if key.is_empty() {
                ConfigError::Read(e.to_string())
            } else {
                invalid(&key, e.kind.to_string())
            }
        })?;
        raw.check()
    }

    /// The shared Redis, if any: one server or a cluster.
    pub fn redis(&self) -> Option<RedisEndpoint> {
        match &self.redis_url {
            Some(url) => Some(RedisEndpoint::Single(url.clone())),
            None if !self.redis_cluster_urls.is_empty() => {
                Some(RedisEndpoint::Cluster(self.redis_cluster_urls.clone()))
            }
            None => None,
        }
    }

    pub fn backend(&self) -> Backend {
        Backend::from_url(self.database_url.expose_secret()).unwrap_or(Backend::Sqlite)
    }

    /// The database URL with any password replaced, for logs.
    pub fn database_url_redacted(&self) -> String {
        redact_url(self.database_url.expose_secret())
    }
}

impl RawSettings {
    fn check(self) -> Result<Settings, ConfigError> {
        let bind: SocketAddr = self.bind.trim().parse().map_err(|_| {
            invalid(
                "bind",
                format!(
                    "`{}` is not an address:port such as 127.0.0.1:8080",
                    self.bind
                ),
            )
        })?;

        let database_url = self.database_url.trim().to_owned();
        let backend = Backend::from_url(&database_url).ok_or_else(|| ConfigError::Invalid {
            variable: "DATABASE_URL".into(),
            key: "database_url".into(),
            message: format!(
                "`{}` must start with sqlite:// or postgres://",
                redact_url(&database_url)
            ),
        })?;

        let public_url_configured = self
            .public_url
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty());
        let public_url = match self.public_url.as_deref().map(str::trim) {
            None | Some("") => {
                if self.twilio_auth_token.is_some() {
                    return Err(invalid(
                        "public_url",
                        "is required when TWILIO_AUTH_TOKEN is set: Twilio signs the public URL it \
                         calls, so the service must know it exactly",
                    ));
                }
                Url::parse(&format!("http://{bind}/")).expect("socket address forms a URL")
            }
            Some(s) => {
                let url = Url::parse(s).map_err(|e| {
                    invalid("public_url", format!("`{s}` is not an absolute URL ({e})"))
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(invalid(
                        "public_url",
                        format!("`{s}` must be an http(s) URL"),
                    ));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(invalid(
                        "public_url",
                        "must not carry a query or a fragment",
                    ));
                }
                url
            }
        };

        let redis_url = match self.redis_url.map(|s| s.trim().to_owned()) {
            Some(s) if s.is_empty() => None,
            Some(s) => {
                if !(s.starts_with("redis://")
                    || s.starts_with("rediss://")
                    || s.starts_with("redis+unix://"))
                {
                    return Err(ConfigError::Invalid {
                        variable: "REDIS_URL".into(),
                        key: "redis_url".into(),
                        message: format!(
                            "`{}` must start with redis:// or rediss://",
                            redact_url(&s)
                        ),
                    });
                }
                Some(SecretString::from(s))
            }
            None => None,
        };
        let mut redis_cluster_urls = Vec::new();
        for url in self
            .redis_cluster_urls
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    "redis_cluster_urls",
                    format!(
                        "`{}` must start with redis:// or rediss://",
                        redact_url(url)
                    ),
                ));
            }
            redis_cluster_urls.push(SecretString::from(url.to_owned()));
        }
        if redis_url.is_some() && !redis_cluster_urls.is_empty() {
            return Err(invalid(
                "redis_cluster_urls",
                "set either REDIS_URL (one server) or SWITCHBOARD_REDIS_CLUSTER_URLS (a cluster), \
                 not both",
            ));
        }

        let mut trusted_proxies = Vec::new();
        for entry in self
            .trusted_proxies
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        "trusted_proxies",
                        format!("`{entry}` is not an IP address or CIDR such as 10.0.0.0/8"),
                    )
                })?;
            trusted_proxies.push(net);
        }

        let log_format = match self.log_format.trim().to_ascii_lowercase().as_str() {
            "text" | "" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("`{other}` is not text or json"),
                ));
            }
        };

        if self.max_body_bytes < 1024 {
            return Err(invalid("max_body_bytes", "must be at least 1024"));
        }
        if self.new_sessions_per_ip_per_minute == 0 {
            return Err(invalid(
                "new_sessions_per_ip_per_minute",
                "must be at least 1",
            ));
        }
        if self.pool_new_leases_per_minute > 60_000 {
            return Err(invalid(
                "pool_new_leases_per_minute",
                "must be at most 60000 (0 turns the budget off)",
            ));
        }
        if !(30..=1440).contains(&self.lease_renewal_hold_minutes) {
            return Err(invalid(
                "lease_renewal_hold_minutes",
                "must be between 30 and 1440",
            ));
        }
        if !(1..=3600).contains(&self.alert_interval_secs) {
            return Err(invalid("alert_interval_secs", "must be between 1 and 3600"));
        }
        let forward_countries = ForwardCountries::parse(&self.forward_countries)
            .map_err(|m| invalid("forward_countries", m))?;
        if self.number_quarantine_days > 3650 {
            return Err(invalid(
                "number_quarantine_days",
                "must be between 0 and 3650 days",
            ));
        }
        if !(3..=600).contains(&self.work_lease_secs) {
            return Err(invalid("work_lease_secs", "must be between 3 and 600"));
        }
        let database_max_connections = match self.database_max_connections {
            0 => return Err(invalid("database_max_connections", "must be at least 1")),
            n => n,
        };

        let outbound_allow = OutboundAllow::parse(self.outbound_allow.iter().map(String::as_str))
            .map_err(|message| invalid("outbound_allow", message))?;
        let outbound_proxy = match self.outbound_proxy.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(check_proxy_url(s)?),
        };

        let twilio_auth_token = self
            .twilio_auth_token
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(SecretString::from);

        let twilio_account_sid = non_empty(self.twilio_account_sid)
            .map(|sid| TwilioAccountSid::parse("twilio_account_sid", &sid))
            .transpose()
            .map_err(|e| ConfigError::Invalid {
                variable: "TWILIO_ACCOUNT_SID".into(),
                key: "twilio_account_sid".into(),
                message: e.message,
            })?;
        let twilio_api_base = match non_empty(self.twilio_api_base).as_deref() {
            None | Some("off") => None,
            Some(s) => {
                let url = Url::parse(s).map_err(|e| {
                    invalid(
                        "twilio_api_base",
                        format!("`{s}` is not an absolute URL ({e})"),
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(invalid(
                        "twilio_api_base",
                        format!("`{s}` must be an http(s) URL, or `off`"),
                    ));
                }
                Some(url)
            }
        };
        if self.numbers_must_be_owned && twilio_api_base.is_none() {
            return Err(invalid(
                "numbers_must_be_owned",
                "needs Twilio's API to ask: SWITCHBOARD_TWILIO_API_BASE cannot be `off`",
            ));
        }
        let [secrets_key, secrets_key_previous] = [
            ("secrets_key", self.secrets_key),
            ("secrets_key_previous", self.secrets_key_previous),
        ]
        .map(|(key, value)| {
            let value = non_empty(value)?;
            Some(match crate::sealing::parse_key(&value) {
                Ok(_) => Ok(SecretString::from(value)),
                Err(message) => Err(invalid(key, message)),
            })
        });
        let secrets_key = secrets_key.transpose()?;
        let secrets_key_previous = secrets_key_previous.transpose()?;
        if secrets_key_previous.is_some() && secrets_key.is_none() {
            return Err(invalid(
                "secrets_key_previous",
                "is only read during a rotation: set SWITCHBOARD_SECRETS_KEY to the new key",
            ));
        }

        Ok(Settings {
            bind,
            public_url,
            public_url_configured,
            database_url: SecretString::from(database_url),
            database_max_connections,
            redis_url,
            redis_cluster_urls,
            geoip_db: self
                .geoip_db
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            trusted_proxies,
            twilio_auth_token,
            twilio_account_sid,
            twilio_api_base,
            secrets_key,
            secrets_key_previous,
            log_format,
            migrate_on_start: self.migrate_on_start.unwrap_or(backend == Backend::Sqlite),
            max_body_bytes: self.max_body_bytes,
            shutdown_timeout_secs: self.shutdown_timeout_secs,
            new_sessions_per_ip_per_minute: self.new_sessions_per_ip_per_minute,
            pool_new_leases_per_minute: self.pool_new_leases_per_minute,
            lease_renewal_hold_minutes: self.lease_renewal_hold_minutes,
            spool_dir: match self.spool_dir.trim() {
                "" => return Err(invalid("spool_dir", "must name a folder")),
                dir => PathBuf::from(dir),
            },
            alert_interval_secs: self.alert_interval_secs,
            work_lease_secs: self.work_lease_secs,
            forward_countries,
            number_quarantine_days: self.number_quarantine_days,
            numbers_must_be_owned: self.numbers_must_be_owned,
            outbound_allow,
            outbound_proxy,
        })
    }
}

/// A trimmed value, None when empty.
fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `SWITCHBOARD_OUTBOUND_PROXY`: an http(s) proxy URL, its credentials (if any) kept secret.
fn check_proxy_url(raw: &str) -> Result<SecretString, ConfigError> {
    let shown = redact_url(raw);
    let url = Url::parse(raw)
        .map_err(|e| invalid("outbound_proxy", format!("`{shown}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            "outbound_proxy",
            format!(
                "`{shown}` must be an http:// or https:// proxy URL such as http://egress.internal:3128"
            ),
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "outbound_proxy",
            format!("`{shown}` must be a proxy's address only: no path, query or fragment"),
        ));
    }
    Ok(SecretString::from(url.to_string()))
}

/// Environment values arrive typed by figment's guess (`12345` becomes a number); text settings
/// take them back as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient {
    S(String),
    I(i64),
    U(u64),
    F(f64),
    B(bool),
}

impl Lenient {
    fn into_string(self) -> String {
        match self {
            Lenient::S(s) => s,
            Lenient::I(i) => i.to_string(),
            Lenient::U(u) => u.to_string(),
            Lenient::F(f) => f.to_string(),
            Lenient::B(b) => b.to_string(),
        }
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Lenient::deserialize(d).map(Lenient::into_string)
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Lenient>::deserialize(d)?.map(Lenient::into_string))
}

/// `a,b,c` from the environment, or a list from the TOML file.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        OneOrMany::Many(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = Settings::from_pairs([]).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.backend(), Backend::Sqlite);
        assert!(s.migrate_on_start);
        assert!(s.redis_url.is_none());
        assert_eq!(s.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(
            (s.pool_new_leases_per_minute, s.lease_renewal_hold_minutes),
            (30, 90)
        );
    }

    #[test]
    fn errors_name_the_setting() {
        let cases = [
            ("bind", "nonsense", "SWITCHBOARD_BIND"),
            ("public_url", "ftp://x", "SWITCHBOARD_PUBLIC_URL"),
            (
                "trusted_proxies",
                "10.0.0.0/8,bogus",
                "SWITCHBOARD_TRUSTED_PROXIES",
            ),
            ("database_url", "mysql://x", "DATABASE_URL"),
            ("redis_url", "http://x", "REDIS_URL"),
            (
                "redis_cluster_urls",
                "redis://a:7000,http://b:7001",
                "SWITCHBOARD_REDIS_CLUSTER_URLS",
            ),
            ("log_format", "xml", "SWITCHBOARD_LOG_FORMAT"),
            (
                "outbound_allow",
                "10.0.0.0/8,*.internal",
                "SWITCHBOARD_OUTBOUND_ALLOW",
            ),
            (
                "outbound_proxy",
                "socks5://proxy:1080",
                "SWITCHBOARD_OUTBOUND_PROXY",
            ),
            (
                "outbound_proxy",
                "egress.internal",
                "SWITCHBOARD_OUTBOUND_PROXY",
            ),
            (
                "outbound_proxy",
                "http://egress:3128/path?x=1",
                "SWITCHBOARD_OUTBOUND_PROXY",
            ),
            (
                "pool_new_leases_per_minute",
                "60001",
                "SWITCHBOARD_POOL_NEW_LEASES_PER_MINUTE",
            ),
            (
                "lease_renewal_hold_minutes",
                "29",
                "SWITCHBOARD_LEASE_RENEWAL_HOLD_MINUTES",
            ),
        ];
        for (key, value, variable) in cases {
            let err = Settings::from_pairs([(key, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(variable), "{key}={value}: {err}");
        }
    }

    #[test]
    fn twilio_token_requires_public_url() {
        let err = Settings::from_pairs([("twilio_auth_token", "abc")]).unwrap_err();
        assert!(err.to_string().contains("SWITCHBOARD_PUBLIC_URL"), "{err}");
        let ok = Settings::from_pairs([
            ("twilio_auth_token", "abc"),
            ("public_url", "https://calls.example.com"),
        ])
        .unwrap();
        assert_eq!(ok.public_url.as_str(), "https://calls.example.com/");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Settings::from_pairs([
            ("database_url", "postgres://app:hunter2@db/sb"),
            ("redis_url", "redis://:redispass@cache:6379"),
            ("twilio_auth_token", "tok_secret_123"),
            ("public_url", "https://x.example"),
        ])
        .unwrap();
        let debug = format!("{s:?}");
        for secret in ["hunter2", "redispass", "tok_secret_123"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(!s.database_url_redacted().contains("hunter2"));
        assert!(
            !s.migrate_on_start,
            "postgres migrates with `switchboard migrate`"
        );
    }

    #[test]
    fn redis_is_one_server_or_a_cluster_never_both() {
        let s = Settings::from_pairs([(
            "redis_cluster_urls",
            "redis://:pw@10.0.0.1:7000, redis://10.0.0.2:7001",
        )])
        .unwrap();
        match s.redis() {
            Some(RedisEndpoint::Cluster(urls)) => assert_eq!(urls.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(!format!("{s:?}").contains(":pw@"));
        let both = Settings::from_pairs([
            ("redis_url", "redis://a:6379"),
            ("redis_cluster_urls", "redis://b:7000"),
        ])
        .unwrap_err();
        assert!(
            both.to_string().contains("SWITCHBOARD_REDIS_CLUSTER_URLS"),
            "{both}"
        );
        assert!(Settings::from_pairs([]).unwrap().redis().is_none());
    }

    #[test]
    fn outbound_settings_are_checked_and_the_proxy_password_never_shows() {
        let s = Settings::from_pairs([
            ("outbound_allow", "10.20.0.0/16, crm.internal ,::1"),
            (
                "outbound_proxy",
                "http://user:pr0xypass@egress.internal:3128",
            ),
        ])
        .unwrap();
        assert_eq!(
            s.outbound_allow,
            OutboundAllow::parse(["10.20.0.0/16", "crm.internal", "::1"]).unwrap()
        );
        assert!(!format!("{s:?}").contains("pr0xypass"));
        let err = Settings::from_pairs([("outbound_proxy", "ftp://u:pr0xypass@egress/")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pr0xypass"), "{err}");
        let none = Settings::from_pairs([]).unwrap();
        assert_eq!(none.outbound_allow, OutboundAllow::default());
        assert!(none.outbound_proxy.is_none());
    }

    #[test]
    fn trusted_proxies_accept_cidrs_and_addresses() {
        let s = Settings::from_pairs([("trusted_proxies", "10.0.0.0/8, 192.168.1.7,::1")]).unwrap();
        assert_eq!(s.trusted_proxies.len(), 3);
    }
}
