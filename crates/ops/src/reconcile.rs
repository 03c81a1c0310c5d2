//! Reconciliation (being written).
