//! Which addresses an outbound request must never reach: everything that is not the public
//! internet (loopback, private networks, link-local and the cloud metadata address, CGNAT,
//! multicast, broadcast, reserved and documentation ranges), in IPv4 and in every IPv6 form
//! that carries an IPv4 address (mapped, compatible, NAT64, 6to4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::IpNet;

/// Why an address is refused, as the tenant may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("loopback")]
    Loopback,
    #[error("private network")]
    Private,
    #[error("link-local (cloud metadata)")]
    LinkLocal,
    #[error("carrier-grade NAT")]
    SharedAddressSpace,
    #[error("multicast")]
    Multicast,
    #[error("unspecified")]
    Unspecified,
    #[error("broadcast")]
    Broadcast,
    #[error("\"this network\" (0.0.0.0/8)")]
    ThisNetwork,
    #[error("documentation")]
    Documentation,
    #[error("benchmarking")]
    Benchmarking,
    #[error("reserved")]
    Reserved,
}

/// IPv4 ranges, most specific first (the broadcast address lies inside 240.0.0.0/4).
const V4: &[(&str, Refusal)] = &[
    ("0.0.0.0/32", Refusal::Unspecified),
    ("0.0.0.0/8", Refusal::ThisNetwork),
    ("10.0.0.0/8", Refusal::Private),
    ("100.64.0.0/10", Refusal::SharedAddressSpace),
    ("127.0.0.0/8", Refusal::Loopback),
    ("169.254.0.0/16", Refusal::LinkLocal),
    ("172.16.0.0/12", Refusal::Private),
    // IETF protocol assignments (incl. DS-Lite, NAT64 discovery) and the retired 6to4 relays.
    ("192.0.0.0/24", Refusal::Reserved),
    ("192.0.2.0/24", Refusal::Documentation),
    ("192.88.99.0/24", Refusal::Reserved),
    ("192.168.0.0/16", Refusal::Private),
    ("198.18.0.0/15", Refusal::Benchmarking),
    ("198.51.100.0/24", Refusal::Documentation),
    ("203.0.113.0/24", Refusal::Documentation),
    ("224.0.0.0/4", Refusal::Multicast),
    ("255.255.255.255/32", Refusal::Broadcast),
    ("240.0.0.0/4", Refusal::Reserved),
];

/// IPv6 ranges inside or beside global unicast (2000::/3) that are not the public internet.
/// Everything outside 2000::/3 is refused too (below), so this list names them for the message.
const V6: &[(&str, Refusal)] = &[
    ("fc00::/7", Refusal::Private),
    // Site-local: deprecated, but still routed inside some networks.
    ("fec0::/10", Refusal::Private),
    ("fe80::/10", Refusal::LinkLocal),
    ("ff00::/8", Refusal::Multicast),
    // IETF protocol assignments: Teredo (2001::/32), benchmarking (2001:2::/48), ORCHID.
    ("2001:2::/48", Refusal::Benchmarking),
    ("2001::/23", Refusal::Reserved),
    ("2001:db8::/32", Refusal::Documentation),
    ("3fff::/20", Refusal::Documentation),
    // SRv6 segment identifiers: never a host on the internet.
    ("5f00::/16", Refusal::Reserved),
];

fn table(entries: &[(&str, Refusal)]) -> Vec<(IpNet, Refusal)> {
    entries
        .iter()
        .map(|(net, why)| (net.parse().expect("a valid CIDR"), *why))
        .collect()
}

static V4_NETS: LazyLock<Vec<(IpNet, Refusal)>> = LazyLock::new(|| table(V4));
static V6_NETS: LazyLock<Vec<(IpNet, Refusal)>> = LazyLock::new(|| table(V6));
static GLOBAL_UNICAST: LazyLock<IpNet> = LazyLock::new(|| "2000::/3".parse().expect("CIDR"));
static NAT64: LazyLock<IpNet> = LazyLock::new(|| "64:ff9b::/96".parse().expect("CIDR"));
static SIX_TO_FOUR: LazyLock<IpNet> = LazyLock::new(|| "2002::/16".parse().expect("CIDR"));

/// Why `ip` is not on the public internet, or None when it is.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn lookup(nets: &[(IpNet, Refusal)], ip: IpAddr) -> Option<Refusal> {
    nets.iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

fn refusal_v4(ip: Ipv4Addr) -> Option<Refusal> {
    lookup(&V4_NETS, IpAddr::V4(ip))
}

fn refusal_v6(ip: Ipv6Addr) -> Option<Refusal> {
    if ip.is_unspecified() {
        return Some(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Refusal::Loopback);
    }
    // An IPv6 form of an IPv4 address reaches that address: judge it as such.
    if let Some(v4) = embedded_v4(ip) {
        if let Some(why) = refusal_v4(v4) {
            return Some(why);
        }
        // IPv4-compatible addresses (::a.b.c.d) are deprecated and not routed; the other
        // forms of a public address (mapped, NAT64, 6to4) reach the public internet.
        let compatible = ip.to_ipv4_mapped().is_none() && ip.to_ipv4().is_some();
        return compatible.then_some(Refusal::Reserved);
    }
    if let Some(why) = lookup(&V6_NETS, IpAddr::V6(ip)) {
        return Some(why);
    }
    (!GLOBAL_UNICAST.contains(&IpAddr::V6(ip))).then_some(Refusal::Reserved)
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64's well-known prefix (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    if let Some(v4) = ip.to_ipv4() {
        // `to_ipv4` covers mapped and compatible (`::1` and `::` are handled before).
        return Some(v4);
    }
    if NAT64.contains(&IpAddr::V6(ip)) {
        return Some(low32);
    }
    if SIX_TO_FOUR.contains(&IpAddr::V6(ip)) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(ip: &str) -> Option<Refusal> {
        refusal(ip.parse().unwrap())
    }

    #[test]
    fn every_non_public_ipv4_range_is_refused_with_its_reason() {
        for (ip, expected) in [
            ("127.0.0.1", Refusal::Loopback),
            ("127.255.255.254", Refusal::Loopback),
            ("10.0.0.1", Refusal::Private),
            ("172.16.0.1", Refusal::Private),
            ("172.31.255.255", Refusal::Private),
            ("192.168.1.1", Refusal::Private),
            ("169.254.169.254", Refusal::LinkLocal),
            ("100.64.0.1", Refusal::SharedAddressSpace),
            ("100.127.255.255", Refusal::SharedAddressSpace),
            ("224.0.0.1", Refusal::Multicast),
            ("239.255.255.250", Refusal::Multicast),
            ("0.0.0.0", Refusal::Unspecified),
            ("0.1.2.3", Refusal::ThisNetwork),
            ("255.255.255.255", Refusal::Broadcast),
            ("240.0.0.1", Refusal::Reserved),
            ("192.0.0.8", Refusal::Reserved),
            ("192.0.2.10", Refusal::Documentation),
            ("198.51.100.7", Refusal::Documentation),
            ("203.0.113.99", Refusal::Documentation),
            ("198.18.0.1", Refusal::Benchmarking),
            ("198.19.255.255", Refusal::Benchmarking),
        ] {
            assert_eq!(why(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_ipv4_addresses_pass_including_the_edges_of_refused_ranges() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "11.0.0.0",
            "9.255.255.255",
            "223.255.255.255",
            "198.20.0.0",
        ] {
            assert_eq!(why(ip), None, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges_and_ipv6_forms_of_refused_ipv4_are_refused() {
        for (ip, expected) in [
            ("::1", Refusal::Loopback),
            ("::", Refusal::Unspecified),
            ("fc00::1", Refusal::Private),
            ("fd12:3456:789a::1", Refusal::Private),
            ("fe80::1", Refusal::LinkLocal),
            ("fec0::1", Refusal::Private),
            ("ff02::1", Refusal::Multicast),
            ("2001:db8::1", Refusal::Documentation),
            ("3fff::1", Refusal::Documentation),
            ("2001::1", Refusal::Reserved),
            ("2001:2::1", Refusal::Benchmarking),
            ("100::1", Refusal::Reserved),
            ("64:ff9b:1::1", Refusal::Reserved),
            // IPv4-mapped and IPv4-compatible forms.
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("::ffff:7f00:1", Refusal::Loopback),
            ("::ffff:10.0.0.1", Refusal::Private),
            ("::ffff:169.254.169.254", Refusal::LinkLocal),
            ("::ffff:100.64.0.1", Refusal::SharedAddressSpace),
            ("::ffff:0.0.0.0", Refusal::Unspecified),
            ("::ffff:255.255.255.255", Refusal::Broadcast),
            ("::127.0.0.1", Refusal::Loopback),
            ("::10.0.0.1", Refusal::Private),
            ("::8.8.8.8", Refusal::Reserved),
            // NAT64 and 6to4 embeddings.
            ("64:ff9b::127.0.0.1", Refusal::Loopback),
            ("64:ff9b::a9fe:a9fe", Refusal::LinkLocal),
            ("2002:0a00:0001::1", Refusal::Private),
            ("2002:7f00:0001::", Refusal::Loopback),
        ] {
            assert_eq!(why(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_ipv6_and_public_embeddings_pass() {
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert_eq!(why(ip), None, "{ip}");
        }
    }

    #[test]
    fn url_spellings_of_loopback_normalise_to_an_address_that_is_refused() {
        // The `url` crate parses hosts as browsers do; the check sees its normalised address.
        for spelling in [
            "http://0x7f000001/",
            "http://2130706433/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "http://127.0.0.1./",
            "http://[::ffff:127.0.0.1]/",
            "http://[0:0:0:0:0:0:0:1]/",
        ] {
            let url = url::Url::parse(spelling).unwrap();
            let ip = match url.host() {
                Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
                Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
                other => panic!("{spelling}: {other:?}"),
            };
            assert_eq!(refusal(ip), Some(Refusal::Loopback), "{spelling}");
        }
    }
}
