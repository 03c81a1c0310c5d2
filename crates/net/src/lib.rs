//! net: the one outbound HTTP and WebSocket client of tradeloom (workflow nodes, LLM endpoints of agents and
//! simulation jobs, health probes), behind an SSRF guard.
//!
//! [`check_url`] decides whether a URL may be fetched: `http`/`https` only, and every address
//! its host resolves to outside the loopback, private, link-local, CGNAT, multicast,
//! unspecified, reserved and documentation ranges (IPv6 forms carrying such an IPv4 address
//! included), cloud metadata hosts refused by name and address. [`GuardedClient`] sends requests
//! that connect only to the addresses the check accepted, re-checks every redirect and bounds the
//! response's size and time. [`SsrfPolicy`] holds the exceptions (for tests and local services)
//! and the bounds.
//!
//! [`connect_websocket`] opens a WebSocket (`ws://`/`wss://`) the same way: the URL through
//! [`check_websocket_url`] (the same policy), the TCP connection only to a checked address.
//!
//! [`SecretEnv`] is the allow-list of environment variables that API callers and workflows may
//! name as a secret's source (model API keys, secret headers).
//!
//! [`connectivity`] records which environment variables the providers of a run or job need
//! (set or not, never their values) and probes the endpoints that are on this host.
//!
//! It knows nothing of workflows, agents or the store; it must not depend on them.

pub mod address;
mod check;
mod cidr;
mod client;
pub mod connectivity;
mod error;
mod host;
mod outbound;
mod policy;
mod secret_env;
mod websocket;

pub use check::{CheckedTarget, check_url, check_websocket_url};
pub use cidr::{Cidr, CidrParseError};
pub use client::{GuardedClient, GuardedResponse};
pub use error::{SsrfError, SsrfErrorKind};
pub use outbound::Outbound;
pub use policy::{
    AllowHostError, DEFAULT_DENY_PATHS, DEFAULT_MAX_REDIRECTS, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT, SsrfPolicy,
};
pub use secret_env::{SECRET_ENV_PREFIXES, SecretEnv, SecretEnvError};
/// The WebSocket library the guarded connections use (its `Message`, errors), so callers need
/// no second copy.
pub use tokio_tungstenite;
pub use websocket::{GuardedWebSocket, WebSocketConnection, WebSocketTransport, connect_websocket};
