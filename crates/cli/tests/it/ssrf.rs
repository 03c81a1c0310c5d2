//! `tradeloom ssrf-check`: verdicts per URL, exit codes, JSON, the allow-list.

use crate::{stderr, stdout, tradeloom};

#[test]
fn ssrf_check_prints_a_verdict_per_url_and_fails_on_any_block() {
    let dir = tempfile::tempdir().unwrap();
    let out = tradeloom(
        dir.path(),
        &[
            "ssrf-check",
            "http://93.184.216.34/",
            "http://0x7f.1:8080/",
            "http://[::ffff:169.254.169.254]/",
            "http://localhost/",
            "file:///etc/passwd",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "allowed  http://93.184.216.34/  (93.184.216.34:80)",
            "blocked  http://0x7f.1:8080/  address 127.0.0.1 is blocked (loopback 127.0.0.0/8)",
            "blocked  http://[::ffff:169.254.169.254]/  address ::ffff:169.254.169.254 is blocked \
             (cloud metadata service 169.254.169.254/32, as 169.254.169.254 inside an IPv4-mapped \
             IPv6 address)",
            "blocked  http://localhost/  host `localhost` is blocked (localhost name)",
            "blocked  file:///etc/passwd  scheme `file` is not allowed; only http and https",
        ]
    );
}

#[test]
fn ssrf_check_exits_0_when_all_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let out = tradeloom(
        dir.path(),
        &[
            "ssrf-check",
            "https://1.1.1.1/dns-query",
            "http://[2606:4700:4700::1111]:8080/",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out).lines().count(), 2);
}

#[test]
fn ssrf_check_json_and_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let out = tradeloom(
        dir.path(),
        &[
            "ssrf-check",
            "--json",
            "--allow-host",
            "127.0.0.1:8089",
            "http://127.0.0.1:8089/v1",
            "http://127.0.0.1:8090/",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let verdicts: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        verdicts,
        serde_json::json!([
            {
                "url": "http://127.0.0.1:8089/v1",
                "allowed": true,
                "addresses": ["127.0.0.1:8089"],
                "allow_listed": true
            },
            {
                "url": "http://127.0.0.1:8090/",
                "allowed": false,
                "reason": "address 127.0.0.1 is blocked (loopback 127.0.0.0/8)"
            }
        ])
    );

    let out = tradeloom(
        dir.path(),
        &[
            "ssrf-check",
            "--allow-host",
            "127.0.0.1:8089",
            "http://127.0.0.1:8089/",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "allowed  http://127.0.0.1:8089/  (127.0.0.1:8089; allow-listed)\n"
    );
}

#[test]
fn ssrf_check_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = tradeloom(dir.path(), &["ssrf-check"]);
    assert_eq!(out.status.code(), Some(2));
    let out = tradeloom(
        dir.path(),
        &["ssrf-check", "--allow-host", "::1", "http://93.184.216.34/"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("allow_hosts entry `::1`"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}
