//! data: market data loaders.
