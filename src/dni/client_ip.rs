//! The visitor's address: the connection's peer, or, when the peer is a trusted proxy, the
//! nearest untrusted address in `X-Forwarded-For` (read right to left, as proxies append).

use std::net::IpAddr;

use ipnet::IpNet;

pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for else {
        return Some(peer);
    };
    let mut nearest = peer;
    for hop in chain.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // A malformed hop: stop trusting the chain there.
            return Some(nearest);
        };
        if !is_trusted(&ip) {
            return Some(ip);
        }
        nearest = ip;
    }
    Some(nearest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // Untrusted peer: its header is ignored (anyone can write one).
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("81.2.69.142"), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Trusted peer: the nearest untrusted hop, not the spoofable leftmost one.
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.2")),
                Some("1.1.1.1, 81.2.69.142, 10.0.0.7"),
                &trusted
            ),
            Some(ip("81.2.69.142"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), None, &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), Some("garbage, 10.0.0.3"), &trusted),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), Some("81.2.69.142"), &[]),
            Some(ip("10.0.0.2"))
        );
    }
}
