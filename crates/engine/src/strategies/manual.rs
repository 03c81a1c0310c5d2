//! `manual`: places no orders of its own. The account is traded only by orders submitted from
//! outside the strategies ([`crate::Engine::submit_external`]): a paper run that accepts
//! `external_orders`, traded by a workflow's `order` node or an operator.

use tradeloom_core::Bar;

use crate::strategy::{Strategy, StrategyContext};

/// The strategy of an account traded from outside; see the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Manual;

impl Strategy for Manual {
    fn on_bar(&mut self, _ctx: &mut StrategyContext<'_>, _bar: &Bar) {}
}

#[cfg(test)]
mod tests {
    use crate::strategies::StrategyConfig;

    #[test]
    fn manual_is_named_without_params_and_builds() {
        let config: StrategyConfig =
            serde_json::from_value(serde_json::json!({"name": "manual"})).unwrap();
        assert_eq!(config, StrategyConfig::Manual);
        assert_eq!(config.name(), "manual");
        assert!(StrategyConfig::NAMES.contains(&"manual"));
        let err = serde_json::from_value::<StrategyConfig>(
            serde_json::json!({"name": "manual", "params": {"quantity": 1}}),
        );
        assert!(err.is_err(), "manual takes no parameters");
    }
}
