//! [`SsrfPolicy`]: what the guard lets through beyond public addresses, and the bounds of a
//! response.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;
use crate::host::normalize;

/// Default [`SsrfPolicy::max_response_bytes`]: 10 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;
/// Default [`SsrfPolicy::timeout`]: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`SsrfPolicy::max_redirects`].
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;
/// Default [`SsrfPolicy::deny_paths`]: the cloud metadata APIs (AWS/OpenStack `/latest/…`,
/// GCP `/computeMetadata`, Azure `/metadata`) and dot-files that hold secrets (`/.env`, `/.git`).
/// They are refused on every host, allow-listed ones included: a metadata service reached
/// through a proxy, a port forward or an allow-listed name is still a metadata service.
pub const DEFAULT_DENY_PATHS: [&str; 7] = [
    "/latest/meta-data",
    "/latest/user-data",
    "/latest/api/token",
    "/computeMetadata",
    "/metadata",
    "/.env",
    "/.git",
];

/// The SSRF guard's configuration. The default refuses every non-public address and allows
/// nothing extra.
///
/// As configuration (YAML/JSON) every field is optional:
///
/// ```yaml
/// allow_hosts: ["127.0.0.1:8089", "mock-llm"]   # host or host:port, allowed whatever they resolve to
/// allow_cidrs: ["10.1.0.0/16"]                  # addresses allowed although in a blocked range
/// resolve: { api.example.test: ["93.184.216.34"] } # static answers instead of DNS
/// max_response_bytes: 10485760
/// timeout_ms: 30000
/// max_redirects: 5
/// deny_paths: ["/latest/meta-data", "/admin"]    # replaces the default list
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsrfPolicy {
    /// Hosts allowed even though their name or addresses are blocked: for tests and local
    /// services, never for user input. An entry is `host` (any port) or `host:port` (that port
    /// only, the scheme's default port when the URL has none); `host` is a name (`mock-llm`,
    /// compared case-insensitively, trailing dot ignored), an IPv4 address (`127.0.0.1`) or a
    /// bracketed IPv6 address (`[::1]:8080`). An allowed host still needs an `http`/`https`
    /// URL, and the connection still goes to the addresses the guard resolved.
    pub allow_hosts: Vec<String>,
    /// Addresses allowed although they fall in a blocked range (e.g. one private subnet).
    pub allow_cidrs: Vec<Cidr>,
    /// Static name resolution used instead of DNS for these names (case-insensitive, trailing
    /// dot ignored). The addresses are checked like DNS answers. For tests and fixed
    /// deployments.
    pub resolve: BTreeMap<String, Vec<IpAddr>>,
    /// Largest response body accepted, in bytes; a longer body fails with
    /// [`crate::SsrfErrorKind::TooLarge`].
    pub max_response_bytes: u64,
    /// Time allowed for a whole exchange: checks, DNS, connecting, every redirect and the
    /// body. Written `timeout_ms` (milliseconds) in configuration.
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    /// Redirects followed before giving up; each target is checked like the first URL.
    pub max_redirects: u32,
    /// Path prefixes refused on every host, allow-listed hosts included, on the first URL and
    /// on every redirect. A prefix matches whole segments (`/metadata` refuses `/metadata` and
    /// `/metadata/x`, not `/metadatax`), compared after percent-decoding, resolving `.`/`..`,
    /// collapsing repeated slashes and lowercasing, so spelling variants a server reads as the
    /// same path are refused too. Default [`DEFAULT_DENY_PATHS`].
    pub deny_paths: Vec<String>,
}

impl Default for SsrfPolicy {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            allow_cidrs: Vec::new(),
            resolve: BTreeMap::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            timeout: DEFAULT_TIMEOUT,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            deny_paths: DEFAULT_DENY_PATHS.iter().map(|p| (*p).to_owned()).collect(),
        }
    }
}

/// An `allow_hosts` entry that is not `host` or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allow_hosts entry `{entry}` is not `host` or `host:port`: {reason}")]
pub struct AllowHostError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A parsed `allow_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostRule {
    /// As [`Url::host_str`] shows it, normalised (IPv6 in brackets).
    host: String,
    port: Option<u16>,
}

impl SsrfPolicy {
    /// Checks every `allow_hosts` entry; [`check_url`](crate::check_url) refuses every URL
    /// under a policy that fails this.
    pub fn validate(&self) -> Result<(), AllowHostError> {
        self.host_rules().map(|_| ())
    }

    pub(crate) fn host_rules(&self) -> Result<Vec<HostRule>, AllowHostError> {
        self.allow_hosts.iter().map(|e| parse_rule(e)).collect()
    }

    /// The static answer for `host` (normalised), if `resolve` has one.
    pub(crate) fn static_resolution(&self, host: &str) -> Option<&[IpAddr]> {
        self.resolve
            .iter()
            .find(|(name, _)| normalize(name) == host)
            .map(|(_, addrs)| addrs.as_slice())
    }

    /// The `deny_paths` entry that refuses `path` (a URL's path as the URL parser left it), if
    /// one does.
    pub(crate) fn denied_path(&self, path: &str) -> Option<&str> {
        let segments = path_segments(path);
        self.deny_paths
            .iter()
            .find(|rule| segments.starts_with(&path_segments(rule)))
            .map(String::as_str)
    }

    /// Whether `ip` is in `allow_cidrs`.
    pub(crate) fn allows_addr(&self, ip: IpAddr) -> bool {
        self.allow_cidrs.iter().any(|c| c.contains(ip))
    }
}

impl HostRule {
    /// Whether the rule allows `url`, whose host is `host` (normalised).
    pub(crate) fn matches(&self, host: &str, url: &Url) -> bool {
        self.host == host
            && self
                .port
                .is_none_or(|p| Some(p) == url.port_or_known_default())
    }
}

/// The segments of a path as a server would read it: percent-decoded (so `%2f` separates and
/// `%61` is `a`), a backslash read as `/`, empty and `.` segments dropped, `..` going up, lowercase.
fn path_segments(path: &str) -> Vec<String> {
    let decoded = percent_decode(path).to_lowercase();
    let mut segments: Vec<String> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s.to_owned()),
        }
    }
    segments
}

/// `%XX` sequences decoded (invalid ones kept as written), bytes read as UTF-8, lossily.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(Some(hi)), Some(Some(lo))) = (
                bytes.get(i + 1).map(|b| hex(*b)),
                bytes.get(i + 2).map(|b| hex(*b)),
            )
        {
            // Two hex digits make at most 255.
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_rule(entry: &str) -> Result<HostRule, AllowHostError> {
    let err = |reason| AllowHostError {
        entry: entry.to_owned(),
        reason,
    };
    let text = entry.trim();
    // Split the port ourselves: the URL parser would drop `:80`, widening the rule to any port.
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(err("unclosed `[`"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(err("junk after `]`"))?),
        };
        (format!("[{inside}]"), port)
    } else {
        match text.split_once(':') {
            Some((_, rest)) if rest.contains(':') => {
                return Err(err("write an IPv6 address in brackets, e.g. `[::1]:8080`"));
            }
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (text.to_owned(), None),
        }
    };
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| err("bad port")))
        .transpose()?;
    if host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(err("bad host"));
    }
    let url = Url::parse(&format!("http://{host}/")).map_err(|_| err("bad host"))?;
    let host = url.host_str().ok_or(err("bad host"))?;
    Ok(HostRule {
        host: normalize(host),
        port,
    })
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(entry: &str) -> HostRule {
        parse_rule(entry).unwrap()
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn rules_match_host_and_port() {
        let any_port = rule("Mock-LLM.");
        assert!(any_port.matches("mock-llm", &url("http://mock-llm:8089/")));
        assert!(any_port.matches("mock-llm", &url("https://mock-llm/")));
        assert!(!any_port.matches("mock-llm.example", &url("http://mock-llm.example/")));

        let one_port = rule("127.0.0.1:8089");
        assert!(one_port.matches("127.0.0.1", &url("http://127.0.0.1:8089/")));
        assert!(!one_port.matches("127.0.0.1", &url("http://127.0.0.1:8090/")));
        assert!(!one_port.matches("127.0.0.1", &url("http://127.0.0.1/")));

        let default_port = rule("127.0.0.1:80");
        assert!(default_port.matches("127.0.0.1", &url("http://127.0.0.1/")));
        assert!(!default_port.matches("127.0.0.1", &url("https://127.0.0.1/")));

        let v6 = rule("[::1]:8080");
        assert!(v6.matches("[::1]", &url("http://[::1]:8080/")));
        // Entries are normalised like URLs: `127.1` is 127.0.0.1.
        assert_eq!(rule("127.1"), rule("127.0.0.1"));
    }

    #[test]
    fn path_rules_match_whole_segments_of_the_decoded_path() {
        let policy = SsrfPolicy::default();
        for denied in [
            "/latest/meta-data",
            "/latest/meta-data/",
            "/Latest/META-DATA/iam",
            "//latest///meta-data",
            "/l%61test/meta-data",
            "/latest%2Fmeta-data",
            "/x/../latest/meta-data",
            "/latest\\meta-data",
            "/metadata",
            "/.env",
        ] {
            assert!(policy.denied_path(denied).is_some(), "{denied}");
        }
        for allowed in [
            "/",
            "/v1/models",
            "/metadatax",
            "/a/latest/meta-data",
            "/%zz",
            "/.environment",
        ] {
            assert_eq!(policy.denied_path(allowed), None, "{allowed}");
        }
        let everything = SsrfPolicy {
            deny_paths: vec!["/".into()],
            ..SsrfPolicy::default()
        };
        assert!(everything.denied_path("/anything").is_some());
        let none = SsrfPolicy {
            deny_paths: Vec::new(),
            ..SsrfPolicy::default()
        };
        assert_eq!(none.denied_path("/latest/meta-data"), None);
    }

    #[test]
    fn bad_rules() {
        for bad in [
            "",
            "::1",
            "[::1",
            "[::1]x",
            "host:port",
            "h:99999",
            "a/b",
            "u@h",
        ] {
            assert!(parse_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_round_trip() {
        let policy: SsrfPolicy = serde_json::from_str(
            r#"{"allow_hosts":["mock-llm"],"allow_cidrs":["10.1.0.0/16"],
                "resolve":{"api.example.test":["93.184.216.34"]},"timeout_ms":1500}"#,
        )
        .unwrap();
        assert_eq!(policy.timeout, Duration::from_millis(1500));
        assert_eq!(policy.max_redirects, DEFAULT_MAX_REDIRECTS);
        assert_eq!(policy.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        let back: SsrfPolicy =
            serde_json::from_str(&serde_json::to_string(&policy).unwrap()).unwrap();
        assert_eq!(back, policy);
        assert!(serde_json::from_str::<SsrfPolicy>(r#"{"timeout":5}"#).is_err());
        assert_eq!(policy.deny_paths.len(), DEFAULT_DENY_PATHS.len());
        let replaced: SsrfPolicy = serde_json::from_str(r#"{"deny_paths":["/admin"]}"#).unwrap();
        assert_eq!(replaced.deny_paths, ["/admin"]);
    }
}
