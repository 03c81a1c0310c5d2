//! The allow-list, allowed address ranges and static resolution let exactly what they name
//! through.

use tradeloom_net::{Cidr, SsrfErrorKind, SsrfPolicy, check_url};

use crate::refused;

fn with_resolution(name: &str, addrs: &[&str]) -> SsrfPolicy {
    let mut policy = SsrfPolicy::default();
    policy.resolve.insert(
        name.to_owned(),
        addrs.iter().map(|a| a.parse().unwrap()).collect(),
    );
    policy
}

/// A public-looking host is accepted through the allow-list and a static resolution; without
/// the resolution (no DNS answers for it here) it is refused.
#[tokio::test]
async fn a_public_looking_allowed_host_is_accepted() {
    let mut policy = with_resolution("api.example.test", &["93.184.216.34"]);
    policy.allow_hosts.push("api.example.test".into());
    let target = check_url(&policy, "https://API.example.test./x?y=1")
        .await
        .unwrap();
    assert_eq!(target.host, "api.example.test");
    assert_eq!(target.addrs, vec!["93.184.216.34:443".parse().unwrap()]);
    assert!(target.allow_listed);
    assert_eq!(target.url.path(), "/x");

    // The same resolution without the allow-list entry: still allowed, the address is public.
    let public = with_resolution("api.example.test", &["93.184.216.34"]);
    let target = check_url(&public, "https://api.example.test/x")
        .await
        .unwrap();
    assert!(!target.allow_listed);

    // Allow-listed but with no resolution: the name does not resolve, so it is refused.
    let mut unresolved = SsrfPolicy::default();
    unresolved.allow_hosts.push("api.example.test".into());
    for policy in [SsrfPolicy::default(), unresolved] {
        let e = refused(&policy, "https://api.example.test/x").await;
        assert!(
            matches!(&e.kind, SsrfErrorKind::Dns { host, .. } if host == "api.example.test"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn the_allow_list_is_needed_for_a_blocked_address() {
    let mut policy = with_resolution("svc.example.test", &["10.0.0.5"]);
    let text = refused(&policy, "http://svc.example.test/")
        .await
        .to_string();
    assert!(
        text.contains("resolves to 10.0.0.5 (private 10.0.0.0/8)"),
        "{text}"
    );

    policy.allow_hosts.push("svc.example.test".into());
    let target = check_url(&policy, "http://svc.example.test:8080/")
        .await
        .unwrap();
    assert_eq!(target.addrs, vec!["10.0.0.5:8080".parse().unwrap()]);
    assert!(target.allow_listed);
}

#[tokio::test]
async fn a_host_port_entry_allows_that_port_only() {
    let mut policy = SsrfPolicy::default();
    policy.allow_hosts.push("127.0.0.1:8089".into());
    policy.allow_hosts.push("[::1]:9000".into());
    for ok in [
        "http://127.0.0.1:8089/v1",
        "http://0x7f.1:8089/",
        "http://[::1]:9000/",
    ] {
        assert!(check_url(&policy, ok).await.is_ok(), "{ok}");
    }
    for blocked in [
        "http://127.0.0.1/",
        "http://127.0.0.1:8090/",
        "http://127.0.0.2:8089/",
        "http://[::1]:9001/",
        "http://localhost:8089/",
    ] {
        refused(&policy, blocked).await;
    }
    // The scheme is checked even for allowed hosts.
    let e = refused(&policy, "ftp://127.0.0.1:8089/").await;
    assert!(matches!(e.kind, SsrfErrorKind::BadScheme(_)), "{e}");
}

#[tokio::test]
async fn an_allowed_name_lifts_the_name_block_too() {
    let mut policy = SsrfPolicy::default();
    policy.allow_hosts.push("localhost".into());
    let target = check_url(&policy, "http://localhost:8089/").await.unwrap();
    assert!(target.allow_listed);
    assert!(
        target.addrs.iter().all(|a| a.ip().is_loopback()),
        "{target:?}"
    );
}

#[tokio::test]
async fn allowed_cidrs_let_their_addresses_through() {
    let mut policy = with_resolution("db.example.test", &["10.1.2.3"]);
    policy
        .allow_cidrs
        .push("10.1.0.0/16".parse::<Cidr>().unwrap());
    assert!(check_url(&policy, "http://db.example.test/").await.is_ok());
    assert!(check_url(&policy, "http://10.1.255.1/").await.is_ok());
    let text = refused(&policy, "http://10.2.0.1/").await.to_string();
    assert!(text.contains("private 10.0.0.0/8"), "{text}");
}

#[tokio::test]
async fn a_malformed_allow_list_refuses_everything() {
    let mut policy = SsrfPolicy::default();
    policy.allow_hosts.push("::1".into());
    assert!(policy.validate().is_err());
    let e = refused(&policy, "http://93.184.216.34/").await;
    assert!(
        e.to_string().contains("write an IPv6 address in brackets"),
        "{e}"
    );
}
