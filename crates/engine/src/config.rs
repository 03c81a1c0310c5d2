//! Engine configuration: execution (fill model, fees, slippage) and risk limits, as they appear
//! in a run spec, plus the resolved [`EngineConfig`] the engine runs with.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::{AccountKind, Bps, Decimal, Money};

use crate::fill_model::FillModel;

/// JSON Schema stand-in for [`Decimal`]: a number or a decimal string.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
pub enum DecimalSchema {
    /// A number (`2.5`).
    Number(f64),
    /// A decimal string (`"2.5"`).
    Text(String),
}

/// `execution:` in a run spec.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecutionConfig {
    /// `bar_close` (fill at the close of the bar the order was submitted on, as NautilusTrader
    /// does with bar data) or `next_open` (fill at the next bar's open, as backtesting.py does).
    #[serde(default)]
    pub fill_model: FillModel,
    /// Fee in basis points of notional, for instruments that set no fee of their own. Default 0.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub fee_bps: Option<Decimal>,
    /// Adverse slippage on market and stop fills, in basis points of the price, rounded to the
    /// tick. Default 0. Exclusive with `slippage_ticks`.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub slippage_bps: Option<Decimal>,
    /// Adverse slippage on market and stop fills, in ticks. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slippage_ticks: Option<u32>,
}

/// `risk:` in a run spec. Every limit is optional; absent means unlimited.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    /// Largest absolute net position per instrument, in instrument units.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub max_position: Option<Decimal>,
    /// Largest notional of one order, in account currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub max_order_notional: Option<Decimal>,
    /// Largest Σ |position × mark| across instruments after an order, in account currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub max_gross_exposure: Option<Decimal>,
    /// Largest fall of equity from its peak, in percent; a breach stops trading for the rest of
    /// the run (a kill event in the journal).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub max_drawdown_pct: Option<Decimal>,
    /// How the run reacts to an engaged kill switch (`{flatten: true}`: close every position
    /// with market orders on any engagement, even one that did not ask for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_switch: Option<KillSwitchConfig>,
}

/// `risk.kill_switch:` in a run spec.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchConfig {
    /// Flatten positions whenever a kill switch covering the run is engaged (default false:
    /// only when the engagement asks for it, `killswitch engage --flatten`).
    #[serde(default)]
    pub flatten: bool,
}

/// `account.margin:` in a run spec: the maintenance-margin rule of a margin account.
///
/// At the close of every timestamp the engine compares equity (cash plus every position marked
/// at its last close) with the maintenance margin, `maintenance_pct` of gross exposure
/// (Σ |position × mark|). When equity is at or below it, a margin call stops trading for the
/// rest of the run; see [`MarginCallAction`]. With the defaults a margin call happens when
/// equity reaches zero, so a run never trades on negative equity.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MarginConfig {
    /// Maintenance margin in percent of gross exposure, from 0 up to (not including) 100.
    /// Default 0: a margin call when equity is at or below zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub maintenance_pct: Option<Decimal>,
    /// What a margin call does besides refusing new orders (default `liquidate`).
    #[serde(default)]
    pub on_call: MarginCallAction,
}

/// `account.margin.on_call`: what a margin call does. Either way working orders are cancelled
/// (reason `margin_call`) and every later order is rejected with code `risk.margin_call`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MarginCallAction {
    /// Close every open position with a reduce-only market order (journaled as
    /// `margin_liquidation`), filled at the next bar's open of its instrument.
    #[default]
    Liquidate,
    /// Keep the positions; only stop trading.
    Halt,
}

impl MarginCallAction {
    /// `liquidate` or `halt`, as written in run specs and journals.
    pub const fn as_str(self) -> &'static str {
        match self {
            MarginCallAction::Liquidate => "liquidate",
            MarginCallAction::Halt => "halt",
        }
    }
}

/// The margin rule resolved to exact values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MarginRule {
    /// Maintenance margin, percent of gross exposure, raw at 10^-9.
    pub maintenance_pct_raw: i64,
    /// What a margin call does.
    pub on_call: MarginCallAction,
}

impl MarginRule {
    /// Resolves `account.margin`; errors name the field. `account_kind` must be margin when a
    /// rule is given (a cash account cannot borrow, so it has no margin rule).
    pub fn resolve(
        config: Option<&MarginConfig>,
        account_kind: AccountKind,
    ) -> Result<Self, ConfigError> {
        let Some(config) = config else {
            return Ok(Self::default());
        };
        if account_kind != AccountKind::Margin {
            return Err(ConfigError::new(
                "account.margin",
                "only a margin account has a margin rule (account.type is cash)",
            ));
        }
        const FIELD: &str = "account.margin.maintenance_pct";
        let maintenance_pct_raw = match config.maintenance_pct {
            Some(d) => {
                let raw = d
                    .to_raw9()
                    .map_err(|e| ConfigError::new(FIELD, e.to_string()))?;
                if !(0..100 * 1_000_000_000).contains(&raw) {
                    return Err(ConfigError::new(
                        FIELD,
                        format!("{d} must be at least 0 and below 100"),
                    ));
                }
                raw
            }
            None => 0,
        };
        Ok(Self {
            maintenance_pct_raw,
            on_call: config.on_call,
        })
    }
}

/// How slippage moves a fill price against the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Slippage {
    /// No slippage: fills at the fill model's price.
    #[default]
    None,
    /// The price moves against the order by this many basis points.
    Bps(Bps),
    /// The price moves against the order by this many ticks of the instrument.
    Ticks(u32),
}

/// Risk limits resolved to exact values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RiskLimits {
    /// Raw quantity at 10^-9.
    pub max_position_raw: Option<i64>,
    /// Largest notional of one order.
    pub max_order_notional: Option<Money>,
    /// Largest gross exposure across instruments after an order.
    pub max_gross_exposure: Option<Money>,
    /// Percent, raw at 10^-9.
    pub max_drawdown_pct_raw: Option<i64>,
}

/// Everything the engine needs besides instruments and strategies.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// When and at what price orders fill.
    pub fill_model: FillModel,
    /// Default fee for instruments without their own.
    pub fee: Bps,
    /// How fill prices move against orders.
    pub slippage: Slippage,
    /// Pre-trade risk limits.
    pub risk: RiskLimits,
    /// Cash or margin account.
    pub account_kind: AccountKind,
    /// The maintenance-margin rule of a margin account (ignored for a cash account). The
    /// default calls margin when equity reaches zero.
    pub margin: MarginRule,
    /// Cash at the start.
    pub initial_cash: Money,
    /// The strategy's name, for the journal's `run_started` event.
    pub strategy_name: String,
}

impl EngineConfig {
    /// Resolves spec sections into exact values; errors name the field.
    pub fn resolve(
        execution: &ExecutionConfig,
        risk: &RiskConfig,
        account_kind: AccountKind,
        initial_cash: Money,
    ) -> Result<Self, ConfigError> {
        let fee = match execution.fee_bps {
            Some(d) => d
                .to_bps()
                .map_err(|e| ConfigError::new("execution.fee_bps", e.to_string()))?,
            None => Bps::ZERO,
        };
        let slippage = match (execution.slippage_bps, execution.slippage_ticks) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "execution",
                    "set either slippage_bps or slippage_ticks, not both",
                ));
            }
            (Some(d), None) => Slippage::Bps(
                d.to_bps()
                    .map_err(|e| ConfigError::new("execution.slippage_bps", e.to_string()))?,
            ),
            (None, Some(t)) => Slippage::Ticks(t),
            (None, None) => Slippage::None,
        };
        let currency = initial_cash.currency();
        let positive_money =
            |d: Option<Decimal>, field: &str| -> Result<Option<Money>, ConfigError> {
                match d {
                    Some(d) if d.is_negative() || d.is_zero() => Err(ConfigError::new(
                        format!("risk.{field}"),
                        format!("{d} must be positive"),
                    )),
                    Some(d) => Ok(Some(d.to_money(currency))),
                    None => Ok(None),
                }
            };
        let max_position_raw = match risk.max_position {
            Some(d) => Some(
                d.to_quantity(9)
                    .map_err(|e| ConfigError::new("risk.max_position", e.to_string()))?
                    .raw(),
            ),
            None => None,
        };
        let max_drawdown_pct_raw = match risk.max_drawdown_pct {
            Some(d) => {
                let raw = d
                    .to_raw9()
                    .map_err(|e| ConfigError::new("risk.max_drawdown_pct", e.to_string()))?;
                if raw <= 0 || raw > 100 * 1_000_000_000 {
                    return Err(ConfigError::new(
                        "risk.max_drawdown_pct",
                        format!("{d} must be above 0 and at most 100"),
                    ));
                }
                Some(raw)
            }
            None => None,
        };
        Ok(Self {
            fill_model: execution.fill_model,
            fee,
            slippage,
            risk: RiskLimits {
                max_position_raw,
                max_order_notional: positive_money(risk.max_order_notional, "max_order_notional")?,
                max_gross_exposure: positive_money(risk.max_gross_exposure, "max_gross_exposure")?,
                max_drawdown_pct_raw,
            },
            account_kind,
            margin: MarginRule::default(),
            initial_cash,
            strategy_name: String::new(),
        })
    }

    /// A frictionless configuration: the given fill model, no fees, no slippage, no limits.
    pub fn frictionless(fill_model: FillModel, initial_cash: Money) -> Self {
        Self {
            fill_model,
            fee: Bps::ZERO,
            slippage: Slippage::None,
            risk: RiskLimits::default(),
            account_kind: AccountKind::Margin,
            margin: MarginRule::default(),
            initial_cash,
            strategy_name: String::new(),
        }
    }
}

/// A run-spec section that does not resolve; shown as `<field>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field's path (`execution.fee_bps`, `account.margin.maintenance_pct`, …).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
