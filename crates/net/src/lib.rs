//! net: the outbound HTTP client of workflow nodes, behind an SSRF guard.
