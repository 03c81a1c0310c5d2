//! core: the plain data of tradeloom — fixed-point prices, quantities and money, instruments,
//! bars, orders, fills, positions, the account and journal events.
//!
//! No I/O, no async, no clocks, no randomness: everything here is a value with checked
//! arithmetic. Money is exact (`i128` at 10^-18), prices and quantities are `i64` at 10^-9 with
//! a per-instrument display precision, so `price × quantity` is exactly a `Money` raw value.

#![warn(missing_docs)]

pub mod account;
pub mod bar;
pub mod canonical;
pub mod connectivity;
pub mod credentials;
pub mod currency;
pub mod data_dir;
pub mod decimal;
pub mod definition_ref;
pub mod duration;
pub mod error;
pub mod event;
pub mod fee_rate;
pub mod fill;
pub mod fixed;
pub mod id_ref;
pub mod instrument;
pub mod money;
pub mod order;
pub mod position;
pub mod price;
pub mod quantity;
pub mod script_limits;
pub mod symbol;
pub mod table;
pub mod time;
pub mod trace;

pub use account::{Account, AccountKind};
pub use bar::{Bar, BarError};
pub use canonical::{canonical_json, locate_error};
pub use credentials::redact_userinfo;
pub use currency::{Currency, CurrencyError};
pub use data_dir::DataDir;
pub use decimal::{ConversionError, Decimal};
pub use definition_ref::{DefinitionRef, MAX_DEFINITION_NAME, is_definition_name};
pub use error::ArithmeticError;
pub use event::{Event, KillReason};
pub use fee_rate::FeeRateError;
pub use fill::{Fill, Liquidity};
pub use fixed::{DecimalError, FIXED_PRECISION, FIXED_SCALAR};
pub use id_ref::{IdRefError, resolve_id};
pub use instrument::{Bps, Instrument, InstrumentError, InstrumentId};
pub use money::Money;
pub use order::{
    Order, OrderError, OrderId, OrderLinks, OrderSide, OrderStatus, OrderType, TimeInForce, Trail,
};
pub use position::{Position, PositionChange};
pub use price::Price;
pub use quantity::{Quantity, SignedQuantity};
pub use symbol::{Symbol, SymbolError};
pub use time::UnixNanos;
pub use trace::{is_trace_id, trace_id};
