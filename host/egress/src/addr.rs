//! Which resolved addresses a name may lead to: the public internet only,
//! unless the allow list names the address itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of non-public address `ip` is, as the refusal names it
/// ("resolves to a private address 10.0.0.5"), or `None` for a public one.
///
/// Refused: this network 0/8 and unspecified `::`; loopback 127/8 and `::1`;
/// private 10/8, 172.16/12, 192.168/16 and unique-local fc00::/7 (with the
/// old site-local fec0::/10); shared (carrier-grade NAT) 100.64/10;
/// link-local 169.254/16 and fe80::/10; multicast 224/4 and ff00::/8;
/// broadcast 255.255.255.255 and the rest of reserved 240/4; the
/// IPv4-compatible `::/96`. An IPv4-mapped (`::ffff:0:0/96`) or NAT64
/// (`64:ff9b::/96`) address is judged by the IPv4 address inside it.
pub(crate) fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_broadcast() {
        "a broadcast address"
    } else if a == 0 {
        "an unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address"
    } else if a == 100 && (64..128).contains(&b) {
        "a shared (carrier-grade NAT) address"
    } else if ip.is_link_local() {
        "a link-local address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if a >= 240 {
        "a reserved address"
    } else {
        return None;
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let segments = ip.segments();
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return non_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    let first = segments[0];
    Some(if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if segments[..6] == [0; 6] {
        "a reserved address"
    } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        "a private address"
    } else if first & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<&'static str> {
        non_public(text.parse().expect("an address"))
    }

    #[test]
    fn every_listed_range_is_refused_with_its_name() {
        for (ip, want) in [
            ("10.0.0.5", "a private address"),
            ("172.16.0.1", "a private address"),
            ("172.31.255.255", "a private address"),
            ("192.168.1.1", "a private address"),
            ("100.64.0.1", "a shared (carrier-grade NAT) address"),
            ("100.127.255.255", "a shared (carrier-grade NAT) address"),
            ("169.254.169.254", "a link-local address"),
            ("127.0.0.1", "a loopback address"),
            ("127.255.0.9", "a loopback address"),
            ("0.0.0.0", "an unspecified address"),
            ("0.1.2.3", "an unspecified address"),
            ("224.0.0.1", "a multicast address"),
            ("255.255.255.255", "a broadcast address"),
            ("240.0.0.1", "a reserved address"),
            ("::1", "a loopback address"),
            ("::", "an unspecified address"),
            ("fc00::1", "a private address"),
            ("fd12:3456::1", "a private address"),
            ("fec0::1", "a private address"),
            ("fe80::1", "a link-local address"),
            ("febf::1", "a link-local address"),
            ("ff02::1", "a multicast address"),
            ("::ffff:10.0.0.5", "a private address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("64:ff9b::a9fe:a9fe", "a link-local address"),
            ("::10.0.0.5", "a reserved address"),
        ] {
            assert_eq!(kind(ip), Some(want), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.1.1",
            "223.255.255.255",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }
}
