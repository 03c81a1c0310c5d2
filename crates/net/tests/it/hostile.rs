//! The guard refuses hostile URLs under the default policy, each for the stated reason.

use std::net::IpAddr;

use tradeloom_net::{SsrfErrorKind, SsrfPolicy, check_url};

use crate::refused;

/// Hostile URL, and text the refusal must contain (the range or scheme it is refused for).
const HOSTILE: &[(&str, &str)] = &[
    // IPv4 loopback in decimal, octal, hex and short forms.
    (
        "http://2130706433/",
        "address 127.0.0.1 is blocked (loopback 127.0.0.0/8)",
    ),
    ("http://0177.0.0.1/", "127.0.0.1 is blocked (loopback"),
    ("http://017700000001/", "127.0.0.1 is blocked (loopback"),
    ("http://0x7f000001/", "127.0.0.1 is blocked (loopback"),
    ("http://0x7f.0.0.1/", "127.0.0.1 is blocked (loopback"),
    ("http://0x7f.1/", "127.0.0.1 is blocked (loopback"),
    ("http://127.1/", "127.0.0.1 is blocked (loopback"),
    ("http://127.0.0.1:22/", "127.0.0.1 is blocked (loopback"),
    ("http://127.0.0.1./", "127.0.0.1 is blocked (loopback"),
    ("http://①②⑦.0.0.1/", "127.0.0.1 is blocked (loopback"),
    ("http://0/", "0.0.0.0 is blocked (unspecified"),
    ("http://0.0.0.0:8080/", "0.0.0.0 is blocked (unspecified"),
    // Userinfo and backslash tricks: the host after `@` (or before `\`) is judged.
    ("http://user@127.0.0.1/", "127.0.0.1 is blocked (loopback"),
    (
        "http://example.com:80@10.1.2.3/",
        "10.1.2.3 is blocked (private 10.0.0.0/8",
    ),
    (
        "http://127.0.0.1\\@example.com/",
        "127.0.0.1 is blocked (loopback",
    ),
    // IPv6 and IPv6 forms carrying a blocked IPv4 address.
    ("http://[::]/", ":: is blocked (unspecified ::/128"),
    ("http://[::1]:8080/", "::1 is blocked (loopback ::1/128"),
    (
        "http://[::ffff:127.0.0.1]/",
        "inside an IPv4-mapped IPv6 address",
    ),
    (
        "http://[::ffff:7f00:1]/",
        "(loopback 127.0.0.0/8, as 127.0.0.1 inside an IPv4-mapped",
    ),
    (
        "http://[0:0:0:0:0:ffff:169.254.169.254]/",
        "cloud metadata service 169.254.169.254/32, as",
    ),
    (
        "http://[::ffff:10.0.0.1]:8080/",
        "private 10.0.0.0/8, as 10.0.0.1 inside an IPv4-mapped",
    ),
    (
        "http://[::127.0.0.1]/",
        "loopback 127.0.0.0/8, as 127.0.0.1 inside an IPv4-compatible",
    ),
    (
        "http://[64:ff9b::7f00:1]/",
        "loopback 127.0.0.0/8, as 127.0.0.1 inside an NAT64",
    ),
    (
        "https://[2002:7f00:1::]/",
        "loopback 127.0.0.0/8, as 127.0.0.1 inside an 6to4",
    ),
    ("http://[fe80::1]/", "link-local fe80::/10"),
    ("http://[fd00::1]/", "unique local (private) fc00::/7"),
    (
        "http://[fd00:ec2::254]/latest/meta-data/",
        "cloud metadata service (AWS)",
    ),
    ("http://[ff02::1]/", "multicast ff00::/8"),
    ("http://[fec0::1]/", "site-local fec0::/10"),
    ("http://[2001:db8::1]/", "documentation 2001:db8::/32"),
    // Cloud metadata by address and by name.
    (
        "http://169.254.169.254/latest/meta-data/",
        "cloud metadata service 169.254.169.254/32",
    ),
    (
        "http://2852039166/",
        "cloud metadata service 169.254.169.254/32",
    ),
    (
        "http://168.63.129.16/",
        "cloud metadata service (Azure WireServer)",
    ),
    (
        "http://100.100.100.200/latest/meta-data/",
        "cloud metadata service (Alibaba)",
    ),
    (
        "http://metadata.google.internal/computeMetadata/v1/",
        "cloud metadata host",
    ),
    ("http://METADATA.google.internal./", "cloud metadata host"),
    ("http://metadata/", "cloud metadata host"),
    ("http://instance-data/latest/", "cloud metadata host"),
    ("http://db.corp.internal/", "private `.internal` name"),
    // Private, shared, multicast, reserved and broadcast IPv4.
    ("http://10.0.0.1/", "private 10.0.0.0/8"),
    ("http://172.16.5.4/", "private 172.16.0.0/12"),
    ("http://192.168.1.1/", "private 192.168.0.0/16"),
    (
        "http://100.64.0.1/",
        "CGNAT shared address space 100.64.0.0/10",
    ),
    ("http://169.254.1.1/", "link-local 169.254.0.0/16"),
    ("http://224.0.0.1/", "multicast 224.0.0.0/4"),
    ("http://240.0.0.1/", "reserved 240.0.0.0/4"),
    ("http://255.255.255.255/", "broadcast 255.255.255.255/32"),
    ("http://198.18.0.1/", "benchmarking 198.18.0.0/15"),
    ("http://192.0.2.10/", "documentation 192.0.2.0/24"),
    // Local names, refused before any lookup.
    (
        "http://localhost/",
        "host `localhost` is blocked (localhost name)",
    ),
    (
        "http://LOCALHOST./",
        "host `localhost` is blocked (localhost name)",
    ),
    ("http://%6c%6f%63%61%6c%68%6f%73%74:8080/", "localhost name"),
    ("http://api.localhost/", "localhost name"),
    // Schemes other than http and https.
    ("ftp://example.com/", "scheme `ftp` is not allowed"),
    ("file:///etc/passwd", "scheme `file` is not allowed"),
    (
        "gopher://127.0.0.1:70/_GET%20/",
        "scheme `gopher` is not allowed",
    ),
    (
        "dict://127.0.0.1:11211/stat",
        "scheme `dict` is not allowed",
    ),
    ("ws://example.com/", "scheme `ws` is not allowed"),
    ("javascript:alert(1)", "scheme `javascript` is not allowed"),
    // Not URLs, or no host.
    ("http://", "not a valid URL"),
    ("//127.0.0.1/", "not a valid URL"),
    ("http://[::1/", "not a valid URL"),
];

#[tokio::test]
async fn every_hostile_url_is_refused_for_its_reason() {
    assert!(HOSTILE.len() >= 30);
    let policy = SsrfPolicy::default();
    let mut wrong = Vec::new();
    for &(url, reason) in HOSTILE {
        let e = refused(&policy, url).await;
        assert!(e.is_refusal(), "{url}: {e}");
        // The URL as given, less any userinfo (it may be a credential).
        match reqwest::Url::parse(url) {
            Ok(parsed) if !parsed.username().is_empty() => {
                let userinfo = format!("{}@", parsed.username());
                assert!(!e.url.contains(&userinfo), "{url}: {}", e.url);
            }
            _ => assert_eq!(e.url, url),
        }
        let text = e.to_string();
        if !text.contains(reason) {
            wrong.push(format!("{url}: expected `{reason}` in `{text}`"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn blocked_addresses_are_named_with_their_range() {
    let e = refused(&SsrfPolicy::default(), "http://0x7f.1/x").await;
    match e.kind {
        SsrfErrorKind::Blocked { addr, block, .. } => {
            assert_eq!(addr, "127.0.0.1".parse::<IpAddr>().unwrap());
            assert_eq!(block.range.name, "loopback");
        }
        other => panic!("{other:?}"),
    }
}

/// Names that the system resolver (here /etc/hosts) answers with a loopback address are refused
/// after resolution, naming the address.
#[tokio::test]
async fn names_resolving_to_loopback_are_refused() {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let names: Vec<&str> = hosts
        .lines()
        .filter_map(|l| l.split('#').next())
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let ip: IpAddr = fields.next()?.parse().ok()?;
            ip.is_loopback().then_some(fields)
        })
        .flatten()
        .filter(|n| !n.contains("localhost"))
        .collect();
    for name in &names {
        let url = format!("http://{name}/");
        let text = refused(&SsrfPolicy::default(), &url).await.to_string();
        assert!(
            text.contains(&format!("`{}` resolves to", name.to_ascii_lowercase()))
                && text.contains("(loopback"),
            "{text}"
        );
    }

    // A name missing from DNS is refused too (here `localhost.localdomain` is, elsewhere it
    // resolves to loopback).
    let text = refused(&SsrfPolicy::default(), "http://localhost.localdomain/")
        .await
        .to_string();
    assert!(
        text.contains("cannot resolve") || text.contains("(loopback"),
        "{text}"
    );
}

/// One blocked answer among public ones refuses the URL (DNS rebinding by multiple answers).
#[tokio::test]
async fn any_blocked_answer_refuses_the_name() {
    let mut policy = SsrfPolicy::default();
    policy.resolve.insert(
        "rebind.example.test".into(),
        vec![
            "93.184.216.34".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ],
    );
    policy.resolve.insert(
        "v6.example.test".into(),
        vec![
            "2606:4700::1".parse().unwrap(),
            "::ffff:169.254.169.254".parse().unwrap(),
        ],
    );
    let text = refused(&policy, "https://rebind.example.test/")
        .await
        .to_string();
    assert!(
        text.contains("`rebind.example.test` resolves to 127.0.0.1 (loopback 127.0.0.0/8)"),
        "{text}"
    );
    let text = refused(&policy, "https://v6.example.test/")
        .await
        .to_string();
    assert!(
        text.contains("resolves to ::ffff:169.254.169.254 (cloud metadata"),
        "{text}"
    );
}

#[tokio::test]
async fn public_addresses_are_allowed() {
    let policy = SsrfPolicy::default();
    for (url, addr) in [
        ("http://93.184.216.34/", "93.184.216.34:80"),
        ("https://1.1.1.1/dns-query", "1.1.1.1:443"),
        (
            "http://[2606:4700:4700::1111]:8080/",
            "[2606:4700:4700::1111]:8080",
        ),
        ("http://[::ffff:8.8.8.8]/", "[::ffff:8.8.8.8]:80"),
        ("http://user:pw@0x08080808/", "8.8.8.8:80"),
    ] {
        let target = check_url(&policy, url).await.unwrap();
        assert_eq!(target.addrs, vec![addr.parse().unwrap()], "{url}");
        assert!(!target.allow_listed);
    }
}
