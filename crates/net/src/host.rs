//! Host names: the names refused before any lookup (localhost, cloud metadata services), and the
//! legacy numeric address forms (`0x7f.1`) some resolvers still accept.

use std::net::Ipv4Addr;

/// Metadata services reachable by name from inside cloud instances (GCP, AWS, Azure, OpenStack,
/// Alibaba, Tencent, …). Their addresses are blocked too; the names are refused before any DNS so
/// that a resolver answering with a different address cannot open the way.
const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
    "metadata.packet.net",
    "metadata.platformequinix.com",
    "metadata.tencentyun.com",
    "instance-data",
    "instance-data.ec2.internal",
];

/// A host name as compared by the guard: ASCII lowercase, without a trailing dot.
pub fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Why a (normalised) host name is refused before resolution, if it is.
pub fn blocked_name(host: &str) -> Option<&'static str> {
    if METADATA_NAMES.contains(&host) {
        return Some("cloud metadata host");
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Some("localhost name");
    }
    if host.ends_with(".internal") {
        return Some("private `.internal` name");
    }
    None
}

/// Parses `text` the way `inet_aton(3)` does: one to four parts, each decimal, octal (leading
/// `0`) or hex (`0x`), the last part filling the remaining bytes (`127.1` is `127.0.0.1`,
/// `0x7f000001` too). The URL parser already turns these forms into IPv4 hosts; the guard runs
/// this over every host it sees as a name as well, so a difference between the URL parser and the
/// system resolver cannot smuggle an address past the check.
pub fn legacy_ipv4(text: &str) -> Option<Ipv4Addr> {
    let text = text.strip_suffix('.').unwrap_or(text);
    let parts: Vec<u32> = text.split('.').map(parse_part).collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|p| *p > 0xff) {
        return None;
    }
    let last_bits = 8 * (4 - head.len() as u32);
    if last_bits < 32 && *last >> last_bits != 0 {
        return None;
    }
    let value = head
        .iter()
        .enumerate()
        .fold(*last, |acc, (i, p)| acc | (p << (24 - 8 * i as u32)));
    Some(Ipv4Addr::from(value))
}

fn parse_part(part: &str) -> Option<u32> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        // `0x` alone is 0 to inet_aton.
        return (radix == 16).then_some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_forms() {
        let loopback = Some(Ipv4Addr::LOCALHOST);
        for text in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "2130706433",
            "017700000001",
            "0x7f000001",
            "0x7f.1",
            "0x7F.0.0.1",
            "0177.0.0.1",
            "0177.0.0.01",
            "127.0.0.1.",
        ] {
            assert_eq!(legacy_ipv4(text), loopback, "{text}");
        }
        assert_eq!(legacy_ipv4("0"), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(
            legacy_ipv4("169.254.43518"),
            Some(Ipv4Addr::new(169, 254, 169, 254))
        );
        for name in [
            "example.com",
            "1.2.3.4.5",
            "256.0.0.1",
            "1.2.3.256",
            "1.2.65536",
            "4294967296",
            "08.0.0.1",
            "0xg",
            "",
            "1..2",
            "127.0.0.1x",
        ] {
            assert_eq!(legacy_ipv4(name), None, "{name}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(blocked_name("localhost"), Some("localhost name"));
        assert_eq!(blocked_name("a.b.localhost"), Some("localhost name"));
        assert_eq!(
            blocked_name("metadata.google.internal"),
            Some("cloud metadata host")
        );
        assert_eq!(blocked_name("instance-data"), Some("cloud metadata host"));
        assert_eq!(
            blocked_name("db.corp.internal"),
            Some("private `.internal` name")
        );
        assert_eq!(blocked_name("example.com"), None);
        assert_eq!(blocked_name("notlocalhost"), None);
        assert_eq!(normalize("LOCALHOST."), "localhost");
    }
}
