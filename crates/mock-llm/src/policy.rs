//! The mock's policies, named by the request's `model`: trading policies that answer with tool
//! calls, workflow-agent roles that answer with JSON, and fault policies that misbehave on
//! purpose.

use std::fmt;

use crate::strategy::Strategy;
use crate::workflow::WorkflowRole;

/// What a policy does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    Trade(Strategy),
    /// A workflow agent's role (`analyst`, `trader`, ...): JSON answers, `calc`/`patch_workflow`.
    Workflow(WorkflowRole),
    /// A workflow role whose final answer is written as small instruct models often do:
    /// `fenced-<role>` puts the JSON in a ```` ```json ```` fence after a sentence,
    /// `prose-<role>` answers with a sentence and no JSON at all.
    StyledWorkflow(WorkflowRole, AnswerStyle),
    /// `echo-params`: answers one JSON object with the request's `model`, `temperature` and
    /// `max_tokens` (`null` when absent), to check what a client sent.
    EchoParams,
    /// `echo-request`: answers one JSON object with the request's `model`, its system
    /// message(s) (`system`, joined by a blank line) and the names of the offered tools
    /// (`tools`, in the order offered), to check the prompt and tool set a client sent.
    EchoRequest,
    /// `prose`: every request, whatever it asks, gets one sentence with no JSON and no tool
    /// call (a small model that never answers usable JSON).
    Prose,
    /// Every turn: `buy` with truncated JSON arguments.
    MalformedJson,
    /// Every turn: `buy` with a quantity that is not a number.
    BadArgs,
    /// Every turn: a call to a tool that does not exist.
    UnknownTool,
    /// Always HTTP 500.
    Http500,
    /// Always HTTP 429 with `Retry-After: 1`.
    Http429,
    /// HTTP 200 whose body is not JSON.
    MalformedBody,
    /// Sleep this many milliseconds, then trade with momentum.
    Slow(u64),
    /// Every turn: a text reply cut off by the token limit (`finish_reason: "length"`).
    Truncated,
    /// Answers at once with a summary and never calls a tool (a model that ignores tools).
    NoTools,
    /// The first `failures` requests of each conversation step answer HTTP 500, then `then`.
    Flaky {
        failures: u32,
        then: Box<Policy>,
    },
    /// `content-<style>-<policy>`: `then`'s tool calls written in the reply's text, as small
    /// local models write them, instead of `tool_calls`.
    InContent {
        style: ContentStyle,
        then: Box<Policy>,
    },
}

/// How a [`Policy::InContent`] writes its calls: `bare` (the reply is the call's JSON, or an
/// array of them), `fenced` (in a ```` ```json ```` fence after a sentence) or `tagged`
/// (`<tool_call>…</tool_call>` blocks, as Qwen2.5 writes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContentStyle {
    Bare,
    Fenced,
    Tagged,
}

impl ContentStyle {
    /// `calls` (name, JSON arguments text) written in this style.
    pub fn write(self, calls: &[(String, String)]) -> String {
        let objects: Vec<String> = calls
            .iter()
            .map(|(name, arguments)| format!(r#"{{"name": "{name}", "arguments": {arguments}}}"#))
            .collect();
        let list = || match objects.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        match self {
            ContentStyle::Bare => list(),
            ContentStyle::Fenced => {
                format!("I will use a tool for this.\n\n```json\n{}\n```", list())
            }
            ContentStyle::Tagged => objects
                .iter()
                .map(|o| format!("<tool_call>\n{o}\n</tool_call>"))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// How a [`Policy::StyledWorkflow`] writes its final answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AnswerStyle {
    Fenced,
    Prose,
}

/// The names `/v1/models` lists and the unknown-model error suggests; `<...>` are parameters.
pub(crate) const POLICY_NAMES: [&str; 26] = [
    "momentum",
    "mean_reversion",
    "buy_and_hold",
    "random-<seed>",
    "analyst",
    "trader",
    "risk_manager",
    "patcher",
    "calculator",
    "skill_user",
    "no-tools",
    "fenced-<role>",
    "prose",
    "prose-<role>",
    "echo-params",
    "echo-request",
    "fault-malformed-json",
    "fault-bad-args",
    "fault-unknown-tool",
    "fault-http-500",
    "fault-http-429",
    "fault-malformed-body",
    "fault-truncated",
    "fault-slow-<ms>",
    "flaky-<n>-<policy>",
    "content-<bare|fenced|tagged>-<policy>",
];

impl Policy {
    /// The policy a model name selects; `None` for an unknown name.
    pub fn parse(name: &str) -> Option<Policy> {
        let name = name.trim();
        let strategy = match name {
            "momentum" => Some(Strategy::Momentum),
            "mean_reversion" | "mean-reversion" => Some(Strategy::MeanReversion),
            "buy_and_hold" | "buy-and-hold" => Some(Strategy::BuyAndHold),
            _ => None,
        };
        if let Some(strategy) = strategy {
            return Some(Policy::Trade(strategy));
        }
        if let Some(role) = WorkflowRole::parse(name) {
            return Some(Policy::Workflow(role));
        }
        let policy = match name {
            "fault-malformed-json" => Policy::MalformedJson,
            "fault-bad-args" => Policy::BadArgs,
            "fault-unknown-tool" => Policy::UnknownTool,
            "fault-http-500" => Policy::Http500,
            "fault-http-429" => Policy::Http429,
            "fault-malformed-body" => Policy::MalformedBody,
            "fault-truncated" => Policy::Truncated,
            "no-tools" => Policy::NoTools,
            "echo-params" => Policy::EchoParams,
            "echo-request" => Policy::EchoRequest,
            "prose" => Policy::Prose,
            _ => {
                if let Some(role) = name.strip_prefix("fenced-") {
                    Policy::StyledWorkflow(WorkflowRole::parse(role)?, AnswerStyle::Fenced)
                } else if let Some(role) = name.strip_prefix("prose-") {
                    Policy::StyledWorkflow(WorkflowRole::parse(role)?, AnswerStyle::Prose)
                } else if let Some(seed) = name.strip_prefix("random-") {
                    Policy::Trade(Strategy::Random(seed.parse().ok()?))
                } else if let Some(ms) = name.strip_prefix("fault-slow-") {
                    Policy::Slow(ms.parse().ok()?)
                } else if let Some(rest) = name.strip_prefix("content-") {
                    let (style, then) = rest.split_once('-')?;
                    let style = match style {
                        "bare" => ContentStyle::Bare,
                        "fenced" => ContentStyle::Fenced,
                        "tagged" => ContentStyle::Tagged,
                        _ => return None,
                    };
                    Policy::InContent {
                        style,
                        then: Box::new(Policy::parse(then)?),
                    }
                } else if let Some(rest) = name.strip_prefix("flaky-") {
                    let (failures, then) = rest.split_once('-')?;
                    Policy::Flaky {
                        failures: failures.parse().ok()?,
                        then: Box::new(Policy::parse(then)?),
                    }
                } else {
                    return None;
                }
            }
        };
        Some(policy)
    }
}

/// `momentum, mean_reversion, ...` for error messages.
pub(crate) struct ExpectedNames;

impl fmt::Display for ExpectedNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, name) in POLICY_NAMES.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(
            Policy::parse("momentum"),
            Some(Policy::Trade(Strategy::Momentum))
        );
        assert_eq!(
            Policy::parse("mean_reversion"),
            Some(Policy::Trade(Strategy::MeanReversion))
        );
        assert_eq!(
            Policy::parse("random-7"),
            Some(Policy::Trade(Strategy::Random(7)))
        );
        assert_eq!(Policy::parse("fault-slow-3000"), Some(Policy::Slow(3000)));
        assert_eq!(
            Policy::parse("fenced-risk_manager"),
            Some(Policy::StyledWorkflow(
                WorkflowRole::RiskManager,
                AnswerStyle::Fenced
            ))
        );
        assert_eq!(
            Policy::parse("prose-trader"),
            Some(Policy::StyledWorkflow(
                WorkflowRole::Trader,
                AnswerStyle::Prose
            ))
        );
        assert_eq!(Policy::parse("echo-params"), Some(Policy::EchoParams));
        assert_eq!(Policy::parse("echo-request"), Some(Policy::EchoRequest));
        assert_eq!(Policy::parse("prose"), Some(Policy::Prose));
        assert_eq!(
            Policy::parse("risk_manager"),
            Some(Policy::Workflow(WorkflowRole::RiskManager))
        );
        assert_eq!(
            Policy::parse("flaky-1-trader"),
            Some(Policy::Flaky {
                failures: 1,
                then: Box::new(Policy::Workflow(WorkflowRole::Trader))
            })
        );
        assert_eq!(
            Policy::parse("flaky-2-momentum"),
            Some(Policy::Flaky {
                failures: 2,
                then: Box::new(Policy::Trade(Strategy::Momentum))
            })
        );
        assert_eq!(
            Policy::parse("flaky-1-random-3"),
            Some(Policy::Flaky {
                failures: 1,
                then: Box::new(Policy::Trade(Strategy::Random(3)))
            })
        );
        for bad in [
            "",
            "gpt-4o",
            "random-",
            "random-x",
            "fault-slow-",
            "flaky-2",
            "flaky-x-momentum",
            "fenced-momentum",
            "prose-",
        ] {
            assert_eq!(Policy::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_listed_concrete_name_parses() {
        for name in POLICY_NAMES.iter().filter(|name| !name.contains('<')) {
            assert!(Policy::parse(name).is_some(), "{name}");
        }
    }
}
