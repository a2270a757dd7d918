//! The DNS resolver of the outbound client: it looks a name up and hands reqwest only the
//! addresses the policy permits, at the moment of connecting. A name that was public when it
//! was saved and points inside the network now (DNS rebinding) finds nothing to connect to.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{Blocked, Policy};

/// How long a name may take to resolve, at save time and at connect time.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Turns a host name into addresses. The system's resolver in production; tests give a fake
/// one to play a rebinding DNS server.
pub trait Lookup: Send + Sync {
    fn lookup(&self, host: &str) -> LookupFuture;
}

/// The operating system's resolver (`getaddrinfo` on tokio's blocking pool, never on the
/// async workers).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// The addresses of `host`, within [`LOOKUP_TIMEOUT`]; `NotFound` when there are none.
pub(super) async fn resolve(lookup: &dyn Lookup, host: &str) -> Result<Vec<IpAddr>, Blocked> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup.lookup(host)).await {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        _ => Err(Blocked::NotFound),
    }
}

/// The `reqwest::dns::Resolve` that keeps refused addresses from ever being connected to.
#[derive(Clone)]
pub struct GuardedResolver {
    pub(super) policy: Arc<Policy>,
    pub(super) lookup: Arc<dyn Lookup>,
}

impl GuardedResolver {
    /// The addresses reqwest may connect to for `host`.
    pub async fn permitted(&self, host: &str) -> Result<Vec<IpAddr>, Blocked> {
        let addrs = resolve(self.lookup.as_ref(), host).await?;
        if self.policy.is_proxy(host) {
            // The operator's own egress proxy: it is meant to be inside the network.
            return Ok(addrs);
        }
        self.policy.keep_permitted(host, addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let me = self.clone();
        Box::pin(async move {
            let addrs = me.permitted(name.as_str()).await?;
            let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::outbound::{OutboundAllow, Refusal};

    /// A DNS server that answers what the test says, and counts the questions.
    struct FakeDns {
        answers: Mutex<Vec<Vec<IpAddr>>>,
    }

    impl FakeDns {
        /// Answers each lookup with the next of `answers` (the last one again once used up).
        fn answering(answers: &[&[&str]]) -> Arc<Self> {
            let answers = answers
                .iter()
                .rev()
                .map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect())
                .collect();
            Arc::new(Self {
                answers: Mutex::new(answers),
            })
        }
    }

    impl Lookup for FakeDns {
        fn lookup(&self, _host: &str) -> LookupFuture {
            let mut answers = self.answers.lock().unwrap();
            let next = if answers.len() > 1 {
                answers.pop().unwrap()
            } else {
                answers[0].clone()
            };
            Box::pin(async move { Ok(next) })
        }
    }

    fn resolver(allow: &str, proxy_host: Option<&str>, dns: Arc<FakeDns>) -> GuardedResolver {
        GuardedResolver {
            policy: Arc::new(Policy {
                allow: OutboundAllow::parse(allow.split(',')).unwrap(),
                proxy_host: proxy_host.map(str::to_owned),
            }),
            lookup: dns,
        }
    }

    async fn connect_to(resolver: &GuardedResolver, host: &str) -> Result<Vec<String>, String> {
        let name: Name = host.parse().unwrap();
        match Resolve::resolve(resolver, name).await {
            Ok(addrs) => Ok(addrs.map(|a| a.ip().to_string()).collect()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[tokio::test]
    async fn a_name_that_rebinds_to_an_internal_address_gets_nothing_to_connect_to() {
        // Public when the URL was saved, loopback and private by the time of the delivery.
        let dns = FakeDns::answering(&[&["93.184.216.34"], &["127.0.0.1", "10.0.0.1"]]);
        let resolver = resolver("", None, dns);
        let saved = resolver.permitted("crm.example").await.unwrap();
        assert_eq!(saved, ["93.184.216.34".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            connect_to(&resolver, "crm.example").await,
            Err("address refused: loopback".to_owned())
        );
    }

    #[tokio::test]
    async fn refused_addresses_are_dropped_and_public_ones_kept() {
        let dns = FakeDns::answering(&[&["10.0.0.1", "93.184.216.34", "::1", "2606:4700::1"]]);
        let resolver = resolver("", None, dns);
        assert_eq!(
            connect_to(&resolver, "mixed.example").await,
            Ok(vec!["93.184.216.34".to_owned(), "2606:4700::1".to_owned()])
        );
    }

    #[tokio::test]
    async fn the_allow_list_and_the_proxy_host_let_internal_addresses_through() {
        let dns = FakeDns::answering(&[&["10.1.2.3", "169.254.169.254"]]);
        let by_net = resolver("10.0.0.0/8", None, dns.clone());
        assert_eq!(
            connect_to(&by_net, "crm.internal").await,
            Ok(vec!["10.1.2.3".to_owned()])
        );
        let by_name = resolver("crm.internal", None, dns.clone());
        assert_eq!(connect_to(&by_name, "CRM.internal").await.unwrap().len(), 2);
        assert_eq!(
            connect_to(&by_name, "other.internal").await,
            Err("address refused: private network".to_owned())
        );
        let proxy = resolver("", Some("egress.internal"), dns);
        assert_eq!(
            connect_to(&proxy, "egress.internal").await.unwrap().len(),
            2
        );
        assert_eq!(
            connect_to(&proxy, "crm.internal").await,
            Err(Blocked::Refused(Refusal::Private).to_string())
        );
    }

    #[tokio::test]
    async fn a_name_without_addresses_is_not_found() {
        let dns = FakeDns::answering(&[&[]]);
        assert_eq!(
            connect_to(&resolver("", None, dns), "nowhere.example").await,
            Err("host not found".to_owned())
        );
    }
}
