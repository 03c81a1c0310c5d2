//! `tradeloom agents …` and `tradeloom skills …`: the registries of agents and skills of a
//! running `tradeloom serve`, through its REST API only (never the store), so they work against
//! a server on another machine.
//!
//! A definition file (YAML or JSON) is read and checked here before anything is sent: one that
//! does not parse, or breaks a rule the API would refuse it for, prints every problem with its
//! file, line and field, and exits 2. What only the server can check (a `skill:` tool naming a
//! registered skill, `model.api_key_env` against its allow-list) comes back as the API's error.
//!
//! Exit codes: 0 success; 1 an API or connection error (the server's code and message are
//! printed); 2 bad input found before any request.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{Value, json};
use tradeloom_client::DefinitionKind;
use tradeloom_core::DefinitionRef;
use tradeloom_flow::AgentDefinition;
use tradeloom_flow::field_path::FieldPath;
use tradeloom_flow::source::{Source, SourceFormat};

use crate::flow_client::{ApiOptions, execute, print_json};

const EXIT_BAD_INPUT: u8 = 2;

/// `tradeloom agents` and `tradeloom skills` subcommands.
#[derive(Subcommand)]
pub enum RegistryCommand {
    /// All of them by name, each with its latest version, owner and last update.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One version with its definition (the latest unless `NAME@VERSION`).
    Show {
        /// NAME, or NAME@VERSION for that version.
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Register one (version 1) from a definition file (YAML or JSON), owned by the API key;
    /// the file is checked first (exit 2 naming the line and field of every problem).
    Create {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Store the next version of NAME from a definition file (its `name` may be left out);
    /// nothing changes when it is the same as the latest. Only the creating key or an admin may.
    Update {
        name: String,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Delete NAME (softly: its versions stay, their numbers are never reused, and jobs and
    /// runs that resolved one keep it). Only the creating key or an admin may.
    Delete {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Every version of NAME: its number, the key that wrote it and when.
    Versions {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

/// Runs `tradeloom agents …` (`kind` agent) or `tradeloom skills …` (`kind` skill).
pub fn run(kind: DefinitionKind, opts: &ApiOptions, command: &RegistryCommand) -> Result<ExitCode> {
    match command {
        RegistryCommand::List { json } => execute(opts, |api| async move {
            let list = api.all_definitions(kind).await?;
            if *json {
                print_json(&list);
            } else {
                match list.table() {
                    Some(table) => print!("{table}"),
                    None => println!("no {kind}s"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
        RegistryCommand::Show { reference, json } => {
            let Some(wanted) = reference_arg(reference) else {
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            };
            execute(opts, |api| async move {
                let detail = api.definition(kind, &wanted.name, wanted.version).await?;
                if *json {
                    print_json(&detail);
                } else {
                    print!("{}", detail.text(kind));
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        RegistryCommand::Create { file, json } => {
            let Some(body) = checked_file(kind, file, None, *json)? else {
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            };
            execute(opts, |api| async move {
                let saved = api.create_definition(kind, &body).await?;
                if *json {
                    print_json(&saved);
                } else {
                    println!("{kind} `{}` created: version {}", saved.name, saved.version);
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        RegistryCommand::Update { name, file, json } => {
            if reference_arg(name).is_none() {
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
            let Some(body) = checked_file(kind, file, Some(name.as_str()), *json)? else {
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            };
            execute(opts, |api| async move {
                let saved = api.update_definition(kind, name, &body).await?;
                if *json {
                    print_json(&saved);
                } else if saved.changed {
                    println!("{kind} `{name}` updated: version {}", saved.version);
                } else {
                    println!(
                        "{kind} `{name}` unchanged: the file is version {} as it is",
                        saved.version
                    );
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        RegistryCommand::Delete { name, json } => execute(opts, |api| async move {
            api.delete_definition(kind, name).await?;
            if *json {
                print_json(&json!({"name": name, "deleted": true}));
            } else {
                println!("{kind} `{name}` deleted (its versions are kept)");
            }
            Ok(ExitCode::SUCCESS)
        }),
        RegistryCommand::Versions { name, json } => execute(opts, |api| async move {
            let detail = api.definition(kind, name, None).await?;
            if *json {
                print_json(&detail.versions);
            } else {
                print!("{}", detail.versions_table());
            }
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// `NAME` or `NAME@VERSION` from the command line; `None` (the reason printed) when it is
/// neither.
fn reference_arg(text: &str) -> Option<DefinitionRef> {
    match DefinitionRef::parse(text) {
        Ok(r) => Some(r),
        Err(message) => {
            eprintln!("error: {message}");
            None
        }
    }
}

/// One problem of a definition file: where (`file:line:column`, or the file), the field (empty
/// for the whole document) and what is wrong.
struct Problem {
    place: String,
    line: Option<usize>,
    field: String,
    message: String,
}

/// The JSON body of the definition in `file`, checked as the API checks it (with `name` set to
/// `name` when given and the file has none); `None` when it has problems, every one printed
/// (as JSON on stdout with `json_out`).
fn checked_file(
    kind: DefinitionKind,
    file: &Path,
    name: Option<&str>,
    json_out: bool,
) -> Result<Option<Value>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the {kind} file {}", file.display()))?;
    let origin = file.display().to_string();
    let problems = match definition_problems(kind, &origin, &text, name) {
        Ok(body) => return Ok(Some(body)),
        Err(problems) => problems,
    };
    if json_out {
        let errors: Vec<Value> = problems
            .iter()
            .map(|p| json!({"path": p.field, "line": p.line, "message": p.message}))
            .collect();
        println!("{}", json!({"valid": false, "errors": errors}));
    } else {
        for p in &problems {
            if p.field.is_empty() {
                eprintln!("{}: {}", p.place, p.message);
            } else {
                eprintln!("{}: {}: {}", p.place, p.field, p.message);
            }
        }
        eprintln!("{origin}: {} problem(s); nothing was sent", problems.len());
    }
    Ok(None)
}

/// Parses `text` (from `origin`) and checks it as a `kind` definition: its JSON body, or every
/// problem found.
fn definition_problems(
    kind: DefinitionKind,
    origin: &str,
    text: &str,
    name: Option<&str>,
) -> Result<Value, Vec<Problem>> {
    let source = Source::detect(origin, text);
    let parsed = match source.format {
        SourceFormat::Json => serde_json::from_str::<Value>(text)
            .map_err(|e| (e.to_string(), Some((e.line(), e.column())))),
        SourceFormat::Yaml => yaml_serde::from_str::<Value>(text).map_err(|e| {
            let at = e.location().map(|l| (l.line(), l.column()));
            (e.to_string(), at)
        }),
    };
    let mut body = parsed.map_err(|(message, at)| {
        let (place, message) = tradeloom_core::locate_error(origin, message, at);
        vec![Problem {
            place,
            line: at.map(|(line, _)| line),
            field: String::new(),
            message: format!("not valid {}: {message}", format_name(source.format)),
        }]
    })?;
    let at = |field: &str, message: String| {
        let location = source.locate(&field_path(field));
        Problem {
            place: location
                .as_ref()
                .map_or_else(|| origin.to_string(), ToString::to_string),
            line: location.map(|l| l.line),
            field: field.to_string(),
            message,
        }
    };
    let Some(map) = body.as_object_mut() else {
        return Err(vec![at(
            "",
            format!("a {kind} definition is a mapping of its fields (`name`, …)"),
        )]);
    };
    if let Some(name) = name {
        match map.get("name") {
            None => {
                map.insert("name".into(), Value::String(name.to_string()));
            }
            Some(Value::String(n)) if n == name => {}
            Some(other) => {
                return Err(vec![at(
                    "name",
                    format!(
                        "{other} differs from `{name}` on the command line; a {kind} is not \
                         renamed (create one under the new name)"
                    ),
                )]);
            }
        }
    }
    let problems = match kind {
        DefinitionKind::Agent => agent_problems(&body),
        DefinitionKind::Skill => match tradeloom_agents::SkillDefinition::from_value(&body) {
            Ok(skill) => skill.problems(),
            Err(problem) => vec![problem],
        },
    };
    if problems.is_empty() {
        Ok(body)
    } else {
        Err(problems
            .into_iter()
            .map(|(field, message)| at(&field, message))
            .collect())
    }
}

/// What the API checks of an agent without its store or configuration: its fields, and its
/// `memory` block as a simulation model's memory settings.
fn agent_problems(body: &Value) -> Vec<(String, String)> {
    let agent = match AgentDefinition::from_value(body) {
        Ok(agent) => agent,
        Err(problem) => return vec![problem],
    };
    let mut problems = agent.problems();
    if let Some(memory) = agent.memory.as_ref().filter(|m| m.is_object()) {
        match serde_json::from_value::<tradeloom_agents::memory::MemoryConfig>(memory.clone()) {
            Ok(settings) => {
                if let Err((field, message)) = settings.check() {
                    problems.push((format!("memory.{field}"), message));
                }
            }
            Err(e) => problems.push(("memory".into(), e.to_string())),
        }
    }
    problems
}

fn format_name(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::Json => "JSON",
        SourceFormat::Yaml => "YAML",
    }
}

/// The field path written `model.temperature` or `tools[1]` (as the checks name fields).
fn field_path(text: &str) -> FieldPath {
    let mut path = FieldPath::root();
    for part in text.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            path = path.key(key);
        }
        // `tools[1]`, or `a[0][2]`.
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                path = path.index(i);
            }
            rest = after.trim_start_matches('[');
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(kind: DefinitionKind, text: &str, name: Option<&str>) -> Vec<String> {
        match definition_problems(kind, "a.yaml", text, name) {
            Ok(body) => panic!("no problem in {body}"),
            Err(p) => p
                .into_iter()
                .map(|p| format!("{} | {} | {}", p.place, p.field, p.message))
                .collect(),
        }
    }

    #[test]
    fn field_paths_read_keys_and_indexes() {
        assert_eq!(
            field_path("model.temperature").to_string(),
            "model.temperature"
        );
        assert_eq!(field_path("tools[1]").to_string(), "tools[1]");
        assert_eq!(field_path("a[0][2].b").to_string(), "a[0][2].b");
        assert!(field_path("").is_root());
    }

    #[test]
    fn problems_name_the_line_and_the_field() {
        let text = "name: analyst\nmodel:\n  base_url: http://127.0.0.1:1/v1\n  model: m\n  temprature: 0.2\n";
        let p = problems(DefinitionKind::Agent, text, None);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("a.yaml:5:"), "{p:?}");
        assert!(p[0].contains("| model.temprature |"), "{p:?}");

        let text = "name: analyst\nmodel: {base_url: 'http://127.0.0.1:1/v1', model: m, temperature: 9}\ntools: [calc, buy]\n";
        let p = problems(DefinitionKind::Agent, text, None);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("| model.temperature |"), "{p:?}");
        assert!(
            p[1].starts_with("a.yaml:3:") && p[1].contains("| tools[1] |"),
            "{p:?}"
        );

        let p = problems(
            DefinitionKind::Skill,
            "name: s\nsource: ''\ninput_schema: {type: object}\noutput_schema: {}\n",
            None,
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("a.yaml:2:") && p.contains("| source |")),
            "{p:?}"
        );

        let p = problems(DefinitionKind::Agent, "name: [unclosed\n", None);
        assert!(
            p[0].starts_with("a.yaml:") && p[0].contains("not valid YAML"),
            "{p:?}"
        );
        let json = "{\"name\": \"a\",\n \"model\": {\"base_url\": \"http://x/v1\", \"model\": \"m\", \"max_retries\": -1}}";
        let p = problems(DefinitionKind::Agent, json, None);
        assert!(
            p[0].starts_with("a.yaml:2:") && p[0].contains("| model.max_retries |"),
            "{p:?}"
        );
    }

    #[test]
    fn an_update_takes_the_name_from_the_command_line() {
        let text = "model: {base_url: 'http://127.0.0.1:1/v1', model: m}\n";
        let body = definition_problems(DefinitionKind::Agent, "a.yaml", text, Some("analyst"))
            .ok()
            .unwrap();
        assert_eq!(body["name"], "analyst");
        let p = problems(
            DefinitionKind::Agent,
            &format!("name: other\n{text}"),
            Some("analyst"),
        );
        assert!(
            p[0].starts_with("a.yaml:1:") && p[0].contains("| name |"),
            "{p:?}"
        );
    }
}
