//! Meta health monitor (being written).
