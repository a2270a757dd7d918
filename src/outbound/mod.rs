//! Outbound requests (webhook deliveries, GA4 events) go to the public internet only: a URL an
//! account saves must not reach into the operator's network (loopback, private ranges, the
//! cloud metadata address, ...). Checked twice: when the URL is saved (its host is resolved and
//! every address must be public), and when each request connects (the client's resolver hands
//! reqwest only permitted addresses, so a name that rebinds later gets nowhere; an IP literal,
//! which reqwest connects to without asking the resolver, is checked before sending).
//!
//! The operator may allow internal destinations (`SWITCHBOARD_OUTBOUND_ALLOW`) and send every
//! outbound request through an egress proxy (`SWITCHBOARD_OUTBOUND_PROXY`).

mod ranges;
mod resolver;

use std::error::Error as StdError;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};

use crate::domain::FieldError;

pub use ranges::{Refusal, refusal};
pub use resolver::{GuardedResolver, LOOKUP_TIMEOUT, Lookup, LookupFuture, SystemLookup};

/// Destinations the operator allows although they are not public: CIDRs (an address is a /32
/// or /128) and exact host names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundAllow {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl OutboundAllow {
    /// Parses `SWITCHBOARD_OUTBOUND_ALLOW`'s entries; blank ones are ignored.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut allow = Self::default();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                allow.nets.push(net.trunc());
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                allow.nets.push(IpNet::from(ip));
            } else if let Some(name) = host_name(entry) {
                allow.hosts.push(name);
            } else {
                return Err(format!(
                    "`{entry}` is not a CIDR (10.0.0.0/8), an IP address or a host name \
                     (crm.internal; exact names, no wildcards)"
                ));
            }
        }
        Ok(allow)
    }

    fn permits_ip(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.nets
            .iter()
            .any(|net| net.contains(&ip) || v4.is_some_and(|v4| net.contains(&v4)))
    }

    fn permits_host(&self, host: &str) -> bool {
        let host = normal_name(host);
        self.hosts.contains(&host)
    }
}

/// A DNS name as `url` normalises it (lower case, IDNA), or None for anything else.
fn host_name(entry: &str) -> Option<String> {
    match Host::parse(entry).ok()? {
        Host::Domain(name)
            if name.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }) =>
        {
            Some(name)
        }
        _ => None,
    }
}

fn normal_name(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Why a destination is not called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error("address refused: {0}")]
    Refused(Refusal),
    #[error("host not found")]
    NotFound,
}

/// The rules the save-time check and the resolver share.
pub(crate) struct Policy {
    allow: OutboundAllow,
    /// The egress proxy's host name, which the client resolves to connect to it.
    proxy_host: Option<String>,
}

impl Policy {
    fn check(&self, host: Option<&str>, ip: IpAddr) -> Result<(), Refusal> {
        if host.is_some_and(|h| self.allow.permits_host(h)) || self.allow.permits_ip(ip) {
            return Ok(());
        }
        refusal(ip).map_or(Ok(()), Err)
    }

    fn is_proxy(&self, host: &str) -> bool {
        self.proxy_host.as_deref() == Some(normal_name(host).as_str())
    }

    /// Connect time: the permitted addresses of `host`; refused when none is left.
    fn keep_permitted(&self, host: &str, addrs: Vec<IpAddr>) -> Result<Vec<IpAddr>, Blocked> {
        let mut first_refusal = None;
        let kept: Vec<IpAddr> = addrs
            .into_iter()
            .filter(|ip| match self.check(Some(host), *ip) {
                Ok(()) => true,
                Err(why) => {
                    first_refusal.get_or_insert(why);
                    false
                }
            })
            .collect();
        match (kept.is_empty(), first_refusal) {
            (true, Some(why)) => Err(Blocked::Refused(why)),
            (true, None) => Err(Blocked::NotFound),
            (false, _) => Ok(kept),
        }
    }
}

/// The outbound policy and the client that enforces it.
pub struct Outbound {
    resolver: GuardedResolver,
    proxy: Option<reqwest::Proxy>,
}

impl Outbound {
    /// `proxy` is `SWITCHBOARD_OUTBOUND_PROXY`, already checked to be an http(s) URL.
    pub fn new(allow: OutboundAllow, proxy: Option<&SecretString>) -> reqwest::Result<Self> {
        Self::with_lookup(allow, proxy, Arc::new(SystemLookup))
    }

    pub fn with_lookup(
        allow: OutboundAllow,
        proxy: Option<&SecretString>,
        lookup: Arc<dyn Lookup>,
    ) -> reqwest::Result<Self> {
        let proxy_url = proxy.and_then(|p| Url::parse(p.expose_secret()).ok());
        let proxy_host = proxy_url.as_ref().and_then(|u| match u.host() {
            Some(Host::Domain(name)) => Some(normal_name(name)),
            _ => None,
        });
        let proxy = proxy_url
            .map(|u| reqwest::Proxy::all(u.as_str()))
            .transpose()?;
        Ok(Self {
            resolver: GuardedResolver {
                policy: Arc::new(Policy { allow, proxy_host }),
                lookup,
            },
            proxy,
        })
    }

    /// A client builder that connects only to permitted addresses, through the proxy if one is
    /// set (never one from `HTTP_PROXY`-style variables), and follows no redirect.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder()
            .dns_resolver(self.resolver.clone())
            // A redirect could lead anywhere, inside the network too, and turn a POST into a GET.
            .redirect(reqwest::redirect::Policy::none());
        match &self.proxy {
            Some(proxy) => builder.proxy(proxy.clone()),
            None => builder.no_proxy(),
        }
    }

    /// Save time: `url`'s host must be public, or resolve to public addresses only.
    pub async fn check_saved(&self, field: &str, url: &Url) -> Result<(), FieldError> {
        let refused = |what: String| {
            FieldError::new(
                field,
                format!(
                    "must be on the public internet: {what}; the service does not call into \
                     private networks (an operator can allow a host with SWITCHBOARD_OUTBOUND_ALLOW)"
                ),
            )
        };
        match url.host() {
            Some(Host::Ipv4(v4)) => self
                .check_literal(IpAddr::V4(v4))
                .map_err(|why| refused(format!("{v4} is refused ({why})"))),
            Some(Host::Ipv6(v6)) => self
                .check_literal(IpAddr::V6(v6))
                .map_err(|why| refused(format!("{v6} is refused ({why})"))),
            Some(Host::Domain(name)) => match self.resolve_name(name).await {
                Ok(()) => Ok(()),
                // The name, never the internal address it resolved to.
                Err(Blocked::Refused(why)) => Err(refused(format!(
                    "{name} resolves to a refused address ({why})"
                ))),
                Err(Blocked::NotFound) => Err(FieldError::new(
                    field,
                    format!(
                        "names a host that could not be resolved ({name}, within {} s)",
                        LOOKUP_TIMEOUT.as_secs()
                    ),
                )),
            },
            None => Err(FieldError::new(field, "must name a host")),
        }
    }

    /// Send time, before the request: an IP literal is checked here (reqwest connects to it
    /// without asking the resolver); behind a proxy, which resolves names itself, so is a name.
    pub async fn check_before_send(&self, url: &Url) -> Result<(), Blocked> {
        match url.host() {
            Some(Host::Ipv4(v4)) => self.check_literal(IpAddr::V4(v4)).map_err(Blocked::Refused),
            Some(Host::Ipv6(v6)) => self.check_literal(IpAddr::V6(v6)).map_err(Blocked::Refused),
            Some(Host::Domain(name)) if self.proxy.is_some() => self.resolve_name(name).await,
            _ => Ok(()),
        }
    }

    fn check_literal(&self, ip: IpAddr) -> Result<(), Refusal> {
        self.resolver.policy.check(None, ip)
    }

    /// Every address of `name` must be permitted (stricter than connect time, which drops the
    /// refused ones: a URL is not saved while any of its addresses is refused).
    async fn resolve_name(&self, name: &str) -> Result<(), Blocked> {
        let policy = &self.resolver.policy;
        if policy.allow.permits_host(name) {
            return Ok(());
        }
        let addrs = resolver::resolve(self.resolver.lookup.as_ref(), name).await?;
        addrs
            .into_iter()
            .try_for_each(|ip| policy.check(Some(name), ip))
            .map_err(Blocked::Refused)
    }
}

/// What an account is told about a failed request: a status line, never the receiver's body,
/// and never an address the name resolved to. The full error goes to the operator's log.
pub fn failure_line(error: &reqwest::Error, timeout_secs: u64) -> String {
    if let Some(blocked) = find_cause::<Blocked>(error) {
        return blocked.to_string();
    }
    if error.is_timeout() {
        return format!("no answer within {timeout_secs} s");
    }
    if find_cause::<rustls::Error>(error).is_some() {
        return "TLS handshake failed".to_owned();
    }
    if let Some(io) = find_cause::<io::Error>(error) {
        use io::ErrorKind::*;
        match io.kind() {
            ConnectionRefused => return "connection refused".to_owned(),
            ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe => {
                return "connection closed by the receiver".to_owned();
            }
            TimedOut => return "connection timed out".to_owned(),
            HostUnreachable | NetworkUnreachable => return "host unreachable".to_owned(),
            _ => {}
        }
    }
    if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// The status line of an answer that was not 2xx: `HTTP 500 Internal Server Error`.
pub fn status_line(status: reqwest::StatusCode) -> String {
    format!("HTTP {status}")
}

/// The first error of type `E` in `error`'s chain, looking inside `io::Error`s too (whose
/// `source()` skips the error they wrap: rustls's hides in two of them).
fn find_cause<'e, E: StdError + 'static>(error: &'e (dyn StdError + 'static)) -> Option<&'e E> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cause = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(wrapped) => Some(wrapped as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_takes_cidrs_addresses_and_exact_names() {
        let allow = OutboundAllow::parse(["10.0.0.0/8", " 192.168.1.7", "::1", "CRM.Internal", ""])
            .unwrap();
        assert!(allow.permits_ip("10.9.8.7".parse().unwrap()));
        assert!(allow.permits_ip("192.168.1.7".parse().unwrap()));
        assert!(!allow.permits_ip("192.168.1.8".parse().unwrap()));
        assert!(allow.permits_ip("::1".parse().unwrap()));
        assert!(allow.permits_ip("::ffff:10.0.0.1".parse().unwrap()));
        assert!(allow.permits_host("crm.internal"));
        assert!(allow.permits_host("crm.internal."));
        assert!(!allow.permits_host("evil.crm.internal"));
        for bad in [
            "10.0.0.0/33",
            "*.internal",
            "http://crm.internal",
            "a b",
            "crm..internal",
        ] {
            let err = OutboundAllow::parse([bad]).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    fn outbound(allow: &str) -> Outbound {
        Outbound::new(OutboundAllow::parse(allow.split(',')).unwrap(), None).unwrap()
    }

    #[tokio::test]
    async fn literals_are_checked_at_save_and_before_sending_names_at_connect() {
        let strict = outbound("");
        for url in [
            "http://127.0.0.1/",
            "http://0x7f000001/",
            "http://2130706433:8080/",
            "http://[::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
        ] {
            let url = Url::parse(url).unwrap();
            let err = strict.check_saved("url", &url).await.unwrap_err();
            assert_eq!(err.field, "url");
            assert!(err.message.contains("is refused"), "{url}: {}", err.message);
            assert!(
                matches!(
                    strict.check_before_send(&url).await,
                    Err(Blocked::Refused(_))
                ),
                "{url}"
            );
        }
        let allowed = outbound("127.0.0.0/8");
        let local = Url::parse("http://127.0.0.1:9/").unwrap();
        assert!(allowed.check_saved("url", &local).await.is_ok());
        assert!(allowed.check_before_send(&local).await.is_ok());
        // Without a proxy, a name is the resolver's to check when the request connects.
        let name = Url::parse("http://localhost:9/").unwrap();
        assert!(strict.check_before_send(&name).await.is_ok());
    }

    #[tokio::test]
    async fn a_name_is_refused_at_save_without_showing_the_address_it_resolved_to() {
        let err = outbound("")
            .check_saved(
                "ga4.endpoint",
                &Url::parse("http://localhost:9/mp").unwrap(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.field, "ga4.endpoint");
        assert!(
            err.message
                .contains("localhost resolves to a refused address (loopback)")
        );
        assert!(!err.message.contains("127.0.0.1"), "{}", err.message);
        let by_name = outbound("localhost");
        assert!(
            by_name
                .check_saved("url", &Url::parse("http://localhost:9/").unwrap())
                .await
                .is_ok()
        );
    }
}
