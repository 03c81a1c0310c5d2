//! Which IP addresses the guard refuses: the tables of blocked ranges, and the IPv6 forms that
//! carry an IPv4 address (mapped, compatible, NAT64, 6to4) unwrapped and judged by that address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::cidr::Cidr;

/// A range of addresses the guard refuses, with the name a refusal quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockedRange {
    /// The addresses.
    pub network: Cidr,
    /// What they are, e.g. `loopback`.
    pub name: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, name: &'static str) -> BlockedRange {
    BlockedRange {
        network: Cidr::v4(a, b, c, d, prefix),
        name,
    }
}

const fn v6(segments: [u16; 8], prefix: u8, name: &'static str) -> BlockedRange {
    BlockedRange {
        network: Cidr::v6(segments, prefix),
        name,
    }
}

/// Refused IPv4 ranges, most specific first (the first match names the refusal).
pub const BLOCKED_V4: &[BlockedRange] = &[
    v4(169, 254, 169, 254, 32, "cloud metadata service"),
    v4(
        168,
        63,
        129,
        16,
        32,
        "cloud metadata service (Azure WireServer)",
    ),
    v4(100, 100, 100, 200, 32, "cloud metadata service (Alibaba)"),
    v4(0, 0, 0, 0, 8, "unspecified / this network"),
    v4(10, 0, 0, 0, 8, "private"),
    v4(100, 64, 0, 0, 10, "CGNAT shared address space"),
    v4(127, 0, 0, 0, 8, LOOPBACK),
    v4(169, 254, 0, 0, 16, "link-local"),
    v4(172, 16, 0, 0, 12, "private"),
    v4(192, 0, 0, 0, 24, "IETF protocol assignments"),
    v4(192, 0, 2, 0, 24, "documentation"),
    v4(192, 88, 99, 0, 24, "6to4 relay anycast"),
    v4(192, 168, 0, 0, 16, "private"),
    v4(198, 18, 0, 0, 15, "benchmarking"),
    v4(198, 51, 100, 0, 24, "documentation"),
    v4(203, 0, 113, 0, 24, "documentation"),
    v4(224, 0, 0, 0, 4, "multicast"),
    v4(255, 255, 255, 255, 32, "broadcast"),
    v4(240, 0, 0, 0, 4, "reserved"),
];

/// Refused IPv6 ranges, most specific first. `::/96`, `::ffff:0:0/96`, `64:ff9b::/96` and
/// `2002::/16` are handled by [`blocked_range`] before this table: they embed an IPv4 address.
pub const BLOCKED_V6: &[BlockedRange] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified"),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, LOOPBACK),
    v6(
        [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
        128,
        "cloud metadata service (AWS)",
    ),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "local-use NAT64"),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only"),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo"),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "benchmarking"),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "segment routing (SRv6)"),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local (private)"),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local"),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
];

/// The IPv6 forms that carry an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d` (`::ffff:0:0/96`): a socket to it reaches `a.b.c.d`.
    Mapped,
    /// `::a.b.c.d` (`::/96`), deprecated; refused even when `a.b.c.d` is public.
    Compatible,
    /// `64:ff9b::a.b.c.d` (`64:ff9b::/96`): a NAT64 gateway forwards it to `a.b.c.d`.
    Nat64,
    /// `2002:AABB:CCDD::/48` (`2002::/16`), deprecated; refused even when the address is public.
    SixToFour,
}

impl Embedding {
    fn name(self) -> &'static str {
        match self {
            Self::Mapped => "IPv4-mapped IPv6",
            Self::Compatible => "IPv4-compatible IPv6",
            Self::Nat64 => "NAT64 IPv6",
            Self::SixToFour => "6to4 IPv6",
        }
    }

    /// The form's own range, quoted when the embedded IPv4 address is fine but the form is not.
    fn range(self) -> BlockedRange {
        match self {
            Self::Mapped => v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped IPv6"),
            Self::Compatible => v6([0; 8], 96, "IPv4-compatible IPv6 (deprecated)"),
            Self::Nat64 => v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, "NAT64 IPv6"),
            Self::SixToFour => v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4 IPv6 (deprecated)"),
        }
    }

    /// Whether the form itself is refused whatever IPv4 address it carries.
    fn always_blocked(self) -> bool {
        matches!(self, Self::Compatible | Self::SixToFour)
    }
}

/// Why an address is refused: the range it falls in and, for an IPv6 form carrying an IPv4
/// address, that form (the range is then the IPv4 address's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressBlock {
    /// The refused range.
    pub range: BlockedRange,
    /// Set when the refused address is an IPv4 address carried inside this IPv6 form.
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

impl fmt::Display for AddressBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.range.name, self.range.network)?;
        if let Some((form, v4)) = self.embedded {
            write!(f, ", as {v4} inside an {} address", form.name())?;
        }
        Ok(())
    }
}

/// The IPv4 address an IPv6 address carries, if it is one of the [`Embedding`] forms. `::` and
/// `::1` are not: they are the IPv6 unspecified and loopback addresses.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    let s = ip.segments();
    let low = Ipv4Addr::new(
        ip.octets()[12],
        ip.octets()[13],
        ip.octets()[14],
        ip.octets()[15],
    );
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some((Embedding::Mapped, low)),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some((Embedding::Compatible, low)),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some((Embedding::Nat64, low)),
        [0x2002, hi, lo, ..] => {
            let [a, b] = hi.to_be_bytes();
            let [c, d] = lo.to_be_bytes();
            Some((Embedding::SixToFour, Ipv4Addr::new(a, b, c, d)))
        }
        _ => None,
    }
}

/// The name of the loopback ranges (`127.0.0.0/8`, `::1`).
pub const LOOPBACK: &str = "loopback";

/// Whether a socket to `ip` stays on this host: a loopback address, or the IPv4-mapped IPv6
/// form of one. The other IPv6 forms carrying `127.x` (compatible, NAT64, 6to4) are refused by
/// the guard like loopback but would be routed elsewhere, so they are not loopback here.
pub fn is_loopback(ip: IpAddr) -> bool {
    blocked_range(ip).is_some_and(|b| {
        b.range.name == LOOPBACK && matches!(b.embedded, None | Some((Embedding::Mapped, _)))
    })
}

/// The blocked range `ip` falls in, or `None` if the guard lets it through.
pub fn blocked_range(ip: IpAddr) -> Option<AddressBlock> {
    match ip {
        IpAddr::V4(_) => first_match(BLOCKED_V4, ip).map(|range| AddressBlock {
            range,
            embedded: None,
        }),
        IpAddr::V6(v6) => {
            if let Some((form, inner)) = embedded_ipv4(v6) {
                if let Some(range) = first_match(BLOCKED_V4, IpAddr::V4(inner)) {
                    return Some(AddressBlock {
                        range,
                        embedded: Some((form, inner)),
                    });
                }
                if form.always_blocked() {
                    return Some(AddressBlock {
                        range: form.range(),
                        embedded: None,
                    });
                }
                // Mapped and NAT64 forms of a public IPv4 address reach that public address.
                return None;
            }
            first_match(BLOCKED_V6, ip).map(|range| AddressBlock {
                range,
                embedded: None,
            })
        }
    }
}

fn first_match(table: &[BlockedRange], ip: IpAddr) -> Option<BlockedRange> {
    table.iter().copied().find(|r| r.network.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(text: &str) -> Option<&'static str> {
        blocked_range(text.parse().unwrap()).map(|b| b.range.name)
    }

    #[test]
    fn loopback_addresses() {
        for yes in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(yes.parse().unwrap()), "{yes}");
        }
        for no in [
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "::",
            "0.0.0.0",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "fe80::1",
        ] {
            assert!(!is_loopback(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn ipv4_table() {
        let cases = [
            ("0.0.0.0", "unspecified / this network"),
            ("0.255.1.2", "unspecified / this network"),
            ("10.20.30.40", "private"),
            ("100.64.0.1", "CGNAT shared address space"),
            ("100.127.255.254", "CGNAT shared address space"),
            ("100.100.100.200", "cloud metadata service (Alibaba)"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "cloud metadata service"),
            ("169.254.0.1", "link-local"),
            ("168.63.129.16", "cloud metadata service (Azure WireServer)"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF protocol assignments"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay anycast"),
            ("192.168.255.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
        ];
        for (ip, name) in cases {
            assert_eq!(name_of(ip), Some(name), "{ip}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(name_of(public), None, "{public}");
        }
    }

    #[test]
    fn ipv6_table() {
        let cases = [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fd00:ec2::254", "cloud metadata service (AWS)"),
            ("fd12:3456::1", "unique local (private)"),
            ("fc00::1", "unique local (private)"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001:0:4136:e378::1", "Teredo"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("100::1", "discard-only"),
            ("5f00::1", "segment routing (SRv6)"),
        ];
        for (ip, name) in cases {
            assert_eq!(name_of(ip), Some(name), "{ip}");
        }
        for public in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(name_of(public), None, "{public}");
        }
    }

    #[test]
    fn embedded_ipv4_is_judged_by_the_ipv4_address() {
        let cases = [
            ("::ffff:127.0.0.1", Embedding::Mapped, "loopback"),
            ("::ffff:7f00:1", Embedding::Mapped, "loopback"),
            (
                "::ffff:169.254.169.254",
                Embedding::Mapped,
                "cloud metadata service",
            ),
            ("::ffff:10.0.0.1", Embedding::Mapped, "private"),
            ("::127.0.0.1", Embedding::Compatible, "loopback"),
            (
                "::0.0.0.2",
                Embedding::Compatible,
                "unspecified / this network",
            ),
            ("64:ff9b::7f00:1", Embedding::Nat64, "loopback"),
            ("64:ff9b::192.168.0.1", Embedding::Nat64, "private"),
            ("2002:7f00:1::1", Embedding::SixToFour, "loopback"),
            (
                "2002:a9fe:a9fe::",
                Embedding::SixToFour,
                "cloud metadata service",
            ),
        ];
        for (ip, form, name) in cases {
            let block = blocked_range(ip.parse().unwrap()).unwrap();
            assert_eq!(block.range.name, name, "{ip}");
            assert_eq!(block.embedded.map(|(f, _)| f), Some(form), "{ip}");
        }
        let shown = blocked_range("::ffff:127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            shown.to_string(),
            "loopback 127.0.0.0/8, as 127.0.0.1 inside an IPv4-mapped IPv6 address"
        );
    }

    #[test]
    fn deprecated_forms_are_refused_even_around_public_addresses() {
        assert_eq!(
            name_of("::8.8.8.8"),
            Some("IPv4-compatible IPv6 (deprecated)")
        );
        assert_eq!(name_of("2002:808:808::1"), Some("6to4 IPv6 (deprecated)"));
        assert_eq!(name_of("64:ff9b::8.8.8.8"), None);
    }
}
