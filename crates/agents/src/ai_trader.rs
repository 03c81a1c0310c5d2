//! AI-Trader's `default_config.json` (reference document 002) mapped to a simulation config.
//!
//! | AI-Trader field | tradeloom |
//! | --- | --- |
//! | `agent_type: BaseAgent` | the model-day session (the only agent type with an equivalent) |
//! | `market: us` | the universe given beside the config (`--universe DIR`, API `universe`) |
//! | `date_range.init_date`, `date_range.end_date` | `start_date`, `end_date` |
//! | `models[].signature` (else `name`) | `models[].name`, the name results are keyed by |
//! | `models[].basemodel` | `models[].model`, sent as the request's `model` |
//! | `models[].enabled: false` | the model is left out |
//! | `models[].openai_base_url` | `models[].base_url`; left out: `OPENAI_API_BASE` |
//! | `models[].openai_api_key` | refused when it holds a key: keys come from the environment (`OPENAI_API_KEY`), never from a file stored with the job |
//! | `agent_config.max_steps` | `max_steps` |
//! | `agent_config.max_retries` | every model's `max_retries` |
//! | `agent_config.base_delay` (seconds) | every model's `backoff_ms` |
//! | `agent_config.initial_cash` | `initial_cash` (exact decimal) |
//! | `agent_config.verbose`, `log_config.log_path` | accepted, not used (logs follow `--log-level`; the job's files go to `<data-dir>/runs/<job_id>/`) |
//!
//! Everything else cannot be mapped. [`map_config`] reports every such field at once in one
//! error ([`AgentError::AiTraderConfig`]), and never quotes a value of the file except the
//! names of `agent_type` and `market`.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::AgentError;
use crate::openai_env;

/// A field of an AI-Trader config that has no tradeloom equivalent, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnmappedField {
    /// The field's path, e.g. `models[2].openai_api_key`.
    pub field: String,
    pub reason: String,
}

/// An AI-Trader config mapped to the fields of a simulation config.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// A simulation config (the object `config_from_value` reads).
    pub config: Value,
    /// What was accepted but not used, and models left out (`enabled: false`).
    pub notes: Vec<String>,
}

/// Maps `value`, an AI-Trader `default_config.json`, to a simulation config trading `universe`
/// (a folder of daily bars; the config itself names no market data). `origin` names the config
/// in errors (a file, or `ai_trader_config`).
pub fn map_config(
    value: &Value,
    universe: Option<&str>,
    origin: &str,
) -> Result<Mapped, AgentError> {
    let mut m = Mapper::default();
    let Some(top) = value.as_object() else {
        m.unmapped("", "an AI-Trader config is a JSON object");
        return Err(m.error(origin));
    };
    let mut out = Map::new();
    for (key, v) in top {
        match key.as_str() {
            "agent_type" => match v.as_str() {
                Some("BaseAgent") => {}
                Some(other) if is_short_name(other) => m.unmapped(
                    "agent_type",
                    format!(
                        "agent type `{other}` has no tradeloom equivalent: only `BaseAgent` (one \
                         daily session per model and date) is supported"
                    ),
                ),
                _ => m.unmapped("agent_type", "expected `BaseAgent`"),
            },
            "market" => match v.as_str() {
                Some("us") => {}
                Some(other) if is_short_name(other) => m.unmapped(
                    "market",
                    format!(
                        "market `{other}` cannot be mapped: the market is the universe given \
                         with the config (`--universe DIR`); use `us` or leave `market` out"
                    ),
                ),
                _ => m.unmapped("market", "expected `us`"),
            },
            "date_range" => m.date_range(v, &mut out),
            "models" => m.models(v, &mut out),
            "agent_config" => m.agent_config(v, &mut out),
            "log_config" => m.log_config(v),
            other => m.unmapped(other, "unknown field of an AI-Trader config"),
        }
    }
    for required in ["date_range", "models"] {
        if !top.contains_key(required) {
            m.unmapped(required, "required");
        }
    }
    match universe.map(str::trim).filter(|u| !u.is_empty()) {
        Some(path) => {
            out.insert("universe".into(), json!({ "path": path }));
        }
        None => m.unmapped(
            "universe",
            "an AI-Trader config names no market data: give the folder of daily bars to trade \
             (`--universe DIR`, or `universe` beside `ai_trader_config` in the API)",
        ),
    }
    // Settings of agent_config that apply to every model.
    if let Some(Value::Array(models)) = out.get_mut("models") {
        for model in models.iter_mut() {
            if let Some(obj) = model.as_object_mut() {
                for (key, v) in &m.per_model {
                    obj.insert(key.clone(), v.clone());
                }
            }
        }
    }
    if m.unmapped.is_empty() {
        Ok(Mapped {
            config: Value::Object(out),
            notes: m.notes,
        })
    } else {
        Err(m.error(origin))
    }
}

/// A value short and plain enough to quote in an error (an enumeration's name, not a secret).
fn is_short_name(s: &str) -> bool {
    s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// AI-Trader's placeholder for a value that belongs in `.env` ("Optional: YOUR_OPENAI_API_KEY,
/// you can write them in .env file"): the same as leaving the field out.
fn is_placeholder(s: &str) -> bool {
    let s = s.trim();
    s.is_empty() || s.starts_with("Optional:") || s.starts_with("YOUR_")
}

#[derive(Default)]
struct Mapper {
    unmapped: Vec<UnmappedField>,
    notes: Vec<String>,
    /// `max_retries` and `backoff_ms` from agent_config, set on every model.
    per_model: Vec<(String, Value)>,
}

impl Mapper {
    fn unmapped(&mut self, field: &str, reason: impl Into<String>) {
        self.unmapped.push(UnmappedField {
            field: field.to_string(),
            reason: reason.into(),
        });
    }

    fn error(self, origin: &str) -> AgentError {
        AgentError::AiTraderConfig {
            origin: origin.to_string(),
            fields: self.unmapped,
        }
    }

    fn date_range(&mut self, v: &Value, out: &mut Map<String, Value>) {
        let Some(obj) = v.as_object() else {
            self.unmapped("date_range", "expected an object {init_date, end_date}");
            return;
        };
        for (key, target) in [("init_date", "start_date"), ("end_date", "end_date")] {
            let field = format!("date_range.{key}");
            match obj.get(key).and_then(Value::as_str) {
                Some(d) if d.parse::<chrono::NaiveDate>().is_ok() => {
                    out.insert(target.into(), Value::String(d.to_string()));
                }
                Some(_) => self.unmapped(
                    &field,
                    "not a date YYYY-MM-DD (sessions are daily; hourly ranges cannot be mapped)",
                ),
                None => self.unmapped(&field, "required: a date YYYY-MM-DD"),
            }
        }
        for key in obj.keys() {
            if key != "init_date" && key != "end_date" {
                self.unmapped(&format!("date_range.{key}"), "unknown field of date_range");
            }
        }
    }

    fn models(&mut self, v: &Value, out: &mut Map<String, Value>) {
        let Some(list) = v.as_array() else {
            self.unmapped("models", "expected a list of models");
            return;
        };
        let mut models = Vec::new();
        for (i, model) in list.iter().enumerate() {
            let at = |f: &str| format!("models[{i}].{f}");
            let Some(obj) = model.as_object() else {
                self.unmapped(&format!("models[{i}]"), "expected an object");
                continue;
            };
            match obj.get("enabled") {
                None | Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => {
                    let shown = obj
                        .get("signature")
                        .or_else(|| obj.get("name"))
                        .and_then(Value::as_str)
                        .filter(|s| is_short_name(s))
                        .unwrap_or("?");
                    self.notes
                        .push(format!("models[{i}] (`{shown}`) is not enabled: left out"));
                    continue;
                }
                Some(_) => self.unmapped(&at("enabled"), "expected true or false"),
            }
            let mut mapped = Map::new();
            let name = ["signature", "name"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(Value::as_str));
            match name {
                Some(n) if !n.trim().is_empty() => {
                    mapped.insert("name".into(), Value::String(n.trim().to_string()));
                }
                _ => self.unmapped(
                    &at("signature"),
                    "required (or `name`): it names the model's results",
                ),
            }
            match obj.get("basemodel").and_then(Value::as_str) {
                Some(b) if !b.trim().is_empty() => {
                    mapped.insert("model".into(), Value::String(b.trim().to_string()));
                }
                _ => self.unmapped(&at("basemodel"), "required: the model the endpoint serves"),
            }
            let explicit_url = match obj.get("openai_base_url") {
                None | Some(Value::Null) => None,
                Some(Value::String(u)) if is_placeholder(u) => None,
                Some(Value::String(u)) => Some(u.trim().to_string()),
                Some(_) => {
                    self.unmapped(&at("openai_base_url"), "expected a URL");
                    None
                }
            };
            match explicit_url {
                Some(url) => {
                    // AI-Trader reads OPENAI_API_KEY for every model: so does the mapping (under
                    // `serve`, a model with its own endpoint needs the variable allow-listed).
                    if openai_env::default_key_is_set() {
                        mapped.insert("api_key_env".into(), json!(openai_env::KEY_ENV));
                    }
                    mapped.insert("base_url".into(), Value::String(url));
                }
                None if openai_env::default_endpoint().is_none() => self.unmapped(
                    &at("openai_base_url"),
                    format!(
                        "no endpoint: give `openai_base_url` or set {} in the environment",
                        openai_env::BASE_ENV
                    ),
                ),
                // base_url left out: the default endpoint and its key (see config.rs).
                None => {}
            }
            match obj.get("openai_api_key") {
                None | Some(Value::Null) => {}
                Some(Value::String(k)) if is_placeholder(k) => {}
                Some(_) => self.unmapped(
                    &at("openai_api_key"),
                    format!(
                        "an API key in the config is not accepted (the config is stored with the \
                         job): remove it and set {} in the environment",
                        openai_env::KEY_ENV
                    ),
                ),
            }
            for key in obj.keys() {
                if ![
                    "name",
                    "basemodel",
                    "signature",
                    "enabled",
                    "openai_base_url",
                    "openai_api_key",
                ]
                .contains(&key.as_str())
                {
                    self.unmapped(&at(key), "unknown field of an AI-Trader model");
                }
            }
            models.push(Value::Object(mapped));
        }
        if models.is_empty() && list.iter().all(Value::is_object) {
            self.unmapped("models", "no enabled model");
        }
        out.insert("models".into(), Value::Array(models));
    }

    fn agent_config(&mut self, v: &Value, out: &mut Map<String, Value>) {
        let Some(obj) = v.as_object() else {
            self.unmapped("agent_config", "expected an object");
            return;
        };
        for (key, v) in obj {
            let field = format!("agent_config.{key}");
            match key.as_str() {
                "max_steps" => match v.as_u64() {
                    Some(n) if (1..=200).contains(&n) => {
                        out.insert("max_steps".into(), json!(n));
                    }
                    _ => self.unmapped(&field, "expected a whole number from 1 to 200"),
                },
                "max_retries" => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) if n <= 20 => self.per_model.push(("max_retries".into(), json!(n))),
                    _ => self.unmapped(&field, "expected a whole number from 0 to 20"),
                },
                "base_delay" => match v.as_f64() {
                    // Seconds → whole milliseconds (a delay bound: f64 is fine here).
                    Some(s) if s.is_finite() && (0.0..=30.0).contains(&s) => self
                        .per_model
                        .push(("backoff_ms".into(), json!((s * 1000.0).round() as u64))),
                    _ => self.unmapped(&field, "expected seconds from 0 to 30"),
                },
                "initial_cash" => match v {
                    // The number's own decimal text: exact, never through f64.
                    Value::Number(n) => match tradeloom_core::Decimal::parse(&n.to_string()) {
                        Ok(d) if !d.is_negative() && !d.is_zero() => {
                            out.insert("initial_cash".into(), Value::String(d.to_string()));
                        }
                        _ => self.unmapped(&field, "expected a positive amount"),
                    },
                    _ => self.unmapped(&field, "expected a positive amount"),
                },
                "verbose" => self
                    .notes
                    .push("agent_config.verbose is not used: logs follow --log-level".to_string()),
                _ => self.unmapped(&field, "unknown field of agent_config"),
            }
        }
    }

    fn log_config(&mut self, v: &Value) {
        let Some(obj) = v.as_object() else {
            self.unmapped("log_config", "expected an object");
            return;
        };
        for key in obj.keys() {
            if key == "log_path" {
                self.notes.push(
                    "log_config.log_path is not used: the job's files go to \
                     <data-dir>/runs/<job_id>/"
                        .to_string(),
                );
            } else {
                self.unmapped(&format!("log_config.{key}"), "unknown field of log_config");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_config() -> Value {
        json!({
            "agent_type": "BaseAgent",
            "market": "us",
            "date_range": {"init_date": "2025-01-02", "end_date": "2025-01-08"},
            "models": [
                {"name": "claude", "basemodel": "anthropic/claude-3.7-sonnet", "signature": "claude-3.7",
                 "enabled": false,
                 "openai_base_url": "Optional: YOUR_OPENAI_BASE_URL,you can write them in .env file",
                 "openai_api_key": "Optional: YOUR_OPENAI_API_KEY,you can write them in .env file"},
                {"name": "mom", "basemodel": "momentum", "signature": "mom-v1", "enabled": true,
                 "openai_base_url": "http://127.0.0.1:8089/v1"}
            ],
            "agent_config": {"max_steps": 30, "max_retries": 3, "base_delay": 1.0,
                             "initial_cash": 10000.5, "verbose": true},
            "log_config": {"log_path": "./data/agent_data"}
        })
    }

    #[test]
    fn the_default_config_maps_field_by_field() {
        let mapped = map_config(&default_config(), Some("universe"), "f.json").unwrap();
        let c = &mapped.config;
        assert_eq!(c["start_date"], "2025-01-02");
        assert_eq!(c["end_date"], "2025-01-08");
        assert_eq!(c["max_steps"], 30);
        assert_eq!(c["initial_cash"], "10000.5");
        assert_eq!(c["universe"]["path"], "universe");
        let models = c["models"].as_array().unwrap();
        assert_eq!(models.len(), 1, "the disabled model is left out: {c}");
        assert_eq!(models[0]["name"], "mom-v1");
        assert_eq!(models[0]["model"], "momentum");
        assert_eq!(models[0]["base_url"], "http://127.0.0.1:8089/v1");
        assert_eq!(models[0]["max_retries"], 3);
        assert_eq!(models[0]["backoff_ms"], 1000);
        assert_eq!(mapped.notes.len(), 3, "{:?}", mapped.notes);
    }

    #[test]
    fn every_unmappable_field_is_named_in_one_error() {
        let mut bad = default_config();
        bad["agent_type"] = json!("BaseAgentCrypto");
        bad["market"] = json!("cn");
        bad["date_range"]["init_date"] = json!("2025-01-02 10:30:00");
        bad["models"][1]["openai_api_key"] = json!("sk-secret-value-123");
        bad["models"][1]["temperature"] = json!(0.2);
        bad["agent_config"]["max_steps"] = json!(0);
        bad["colour"] = json!("red");
        let err = map_config(&bad, None, "f.json").unwrap_err();
        let AgentError::AiTraderConfig { fields, .. } = &err else {
            panic!("{err}");
        };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        for expected in [
            "agent_type",
            "market",
            "date_range.init_date",
            "models[1].openai_api_key",
            "models[1].temperature",
            "agent_config.max_steps",
            "colour",
            "universe",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert_eq!(names.len(), 8, "{names:?}");
        let text = err.to_string();
        assert!(text.starts_with("f.json: 8 fields of the AI-Trader config cannot be mapped: "));
        assert!(
            !text.contains("sk-secret"),
            "the key is never quoted: {text}"
        );
        assert!(text.contains("BaseAgentCrypto"), "{text}");
    }
}
