//! The one arithmetic error of the domain: overflow is an error, never a wrap.

/// A checked operation overflowed (or divided by zero). Carries what was being computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("arithmetic overflow in {0}")]
pub struct ArithmeticError(pub &'static str);
