//! `tradeloom ssrf-check`: the workflow HTTP node's SSRF guard applied to URLs, DNS resolution
//! included, without ever connecting.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use tradeloom_net::{SsrfPolicy, check_url};

/// One URL's verdict, as `--json` prints it.
#[derive(Serialize)]
struct Verdict {
    url: String,
    allowed: bool,
    /// The addresses a request would connect to (allowed URLs only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<String>,
    /// Whether an `--allow-host` entry let it through.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    allow_listed: bool,
    /// Why it is blocked (blocked URLs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Checks every URL under the default policy plus `allow_hosts`; prints one line (or one JSON
/// array entry) per URL. Exit 0 if all are allowed, 1 if any is blocked.
pub fn check(urls: &[String], allow_hosts: Vec<String>, json: bool) -> Result<ExitCode> {
    let policy = SsrfPolicy {
        allow_hosts,
        ..SsrfPolicy::default()
    };
    policy.validate().context("bad --allow-host")?;
    let verdicts = crate::store::runtime()?.block_on(async {
        let mut verdicts = Vec::with_capacity(urls.len());
        for url in urls {
            verdicts.push(match check_url(&policy, url).await {
                Ok(target) => Verdict {
                    url: url.clone(),
                    allowed: true,
                    addresses: target.addrs.iter().map(ToString::to_string).collect(),
                    allow_listed: target.allow_listed,
                    reason: None,
                },
                Err(e) => Verdict {
                    url: url.clone(),
                    allowed: false,
                    addresses: Vec::new(),
                    allow_listed: false,
                    reason: Some(e.kind.to_string()),
                },
            });
        }
        verdicts
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&verdicts)?);
    } else {
        for v in &verdicts {
            match &v.reason {
                None => {
                    let listed = if v.allow_listed { "; allow-listed" } else { "" };
                    println!("allowed  {}  ({}{listed})", v.url, v.addresses.join(", "));
                }
                Some(reason) => println!("blocked  {}  {reason}", v.url),
            }
        }
    }
    Ok(if verdicts.iter().all(|v| v.allowed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
