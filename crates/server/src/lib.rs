//! server: the REST API.
