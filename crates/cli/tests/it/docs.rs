//! The documentation shows commands that exist: every line of a fenced code block in README.md,
//! docs/src/**/*.md and crates/*/README.md that runs `tradeloom` (plain, after a `$ ` prompt, as
//! `./target/release/tradeloom`, or as `cargo run … -- ARGS`) names subcommands the binary has,
//! and every `--flag` on it is one that subcommand accepts (it appears in its `--help`). The
//! same holds for the usage in the first column of a table headed `command` (the command
//! tables of the README and the reference). Also: the README stays a short front door, and the
//! book's chapters and local links resolve.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::repo;

/// A word of a command line, as a shell would split it (quotes removed).
#[derive(Debug, Clone, PartialEq)]
struct Word {
    text: String,
    /// The word was written in quotes: never a subcommand or a flag.
    quoted: bool,
}

/// A `tradeloom` command line found in a fenced code block, or a usage in a command table.
#[derive(Debug)]
struct DocCommand {
    /// `FILE:LINE` of the line.
    place: String,
    /// The line (or the table cell's code span) as written, trimmed.
    line: String,
    /// The arguments after the program.
    args: Vec<Word>,
    /// For the second and later usages of one table cell (`flow validate` / `submit` / `runs`):
    /// a usage whose first word is a subcommand of the previous one's parent, or is no top-level
    /// subcommand, continues that parent (`flow submit`, `flow runs`).
    continues_cell: bool,
}

/// The help of one subcommand path of the binary, read once.
struct Help {
    text: String,
    subcommands: Vec<String>,
}

/// Runs the built binary's `--help` for subcommand paths, caching the answers.
#[derive(Default)]
struct Cli {
    helps: BTreeMap<Vec<String>, Help>,
}

impl Cli {
    fn help(&mut self, path: &[String]) -> &Help {
        self.helps.entry(path.to_vec()).or_insert_with(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
                .args(path)
                .arg("--help")
                .output()
                .expect("tradeloom runs");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "`tradeloom {} --help` failed: {text}{}",
                path.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            let subcommands = subcommands_in_help(&text);
            Help { text, subcommands }
        })
    }

    /// Checks one command line: `Err` says what is wrong with it; `Ok` has the subcommand path.
    fn check(&mut self, args: &[Word]) -> Result<Vec<String>, String> {
        let mut path: Vec<String> = Vec::new();
        let mut rest = args;
        loop {
            let help = self.help(&path);
            if help.subcommands.is_empty() {
                break;
            }
            let Some(word) = rest.first() else { break };
            if word.quoted || !is_command_word(&word.text) {
                break;
            }
            if !help.subcommands.contains(&word.text) {
                return Err(format!(
                    "`tradeloom{}` has no subcommand `{}` (it has: {})",
                    path.iter().map(|p| format!(" {p}")).collect::<String>(),
                    word.text,
                    help.subcommands.join(", ")
                ));
            }
            path.push(word.text.clone());
            rest = &rest[1..];
        }
        let help = &self.help(&path).text;
        let mut bad = Vec::new();
        for word in rest.iter().filter(|w| !w.quoted) {
            let Some(flag) = flag_of(&word.text) else {
                continue;
            };
            if !mentions_flag(help, &flag) {
                bad.push(flag);
            }
        }
        if bad.is_empty() {
            Ok(path)
        } else {
            Err(format!(
                "`tradeloom {}` does not accept {}",
                path.join(" "),
                bad.iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

/// The subcommand names listed under `Commands:` in a clap help text.
fn subcommands_in_help(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if !in_commands {
            continue;
        }
        if line.trim().is_empty() || !line.starts_with("  ") {
            break;
        }
        // A name starts two spaces in; deeper lines continue a description.
        if line.as_bytes().get(2).is_some_and(|b| *b != b' ')
            && let Some(name) = line.split_whitespace().next()
        {
            names.push(name.to_string());
        }
    }
    names
}

/// A word that could be a subcommand name (`run`, `mock-llm`, `ssrf-check`).
fn is_command_word(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The `--flag` a word spells, without usage brackets (`[--run`), a value (`--addr=X`) or
/// trailing punctuation.
fn flag_of(text: &str) -> Option<String> {
    let text = text.trim_start_matches(['[', '(']);
    let name = text.strip_prefix("--")?;
    let name: String = name
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let name = name.trim_end_matches('-');
    if name.is_empty() {
        None
    } else {
        Some(format!("--{name}"))
    }
}

/// Whether a help text lists `flag` (followed by a character that cannot continue its name).
fn mentions_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let before_ok = at == 0 || !help.as_bytes()[at - 1].is_ascii_alphanumeric();
        let after = help[at + flag.len()..].chars().next();
        before_ok && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// Splits a line as a shell would into words (single and double quotes, backslash escapes).
fn shell_words(line: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            '\'' | '"' => {
                let word = current.get_or_insert(Word {
                    text: String::new(),
                    quoted: true,
                });
                for inner in chars.by_ref() {
                    if inner == c {
                        break;
                    }
                    word.text.push(inner);
                }
            }
            '\\' => {
                let word = current.get_or_insert(Word {
                    text: String::new(),
                    quoted: false,
                });
                word.text.push(chars.next().unwrap_or('\\'));
            }
            c => current
                .get_or_insert(Word {
                    text: String::new(),
                    quoted: false,
                })
                .text
                .push(c),
        }
    }
    words.extend(current);
    words
}

/// The arguments of a `tradeloom` command on a code line, or `None` when the line runs
/// something else. The arguments end where the shell would end the command (`|`, `&&`, `;`,
/// `&`, a redirection, a `#` comment); a `|` inside usage brackets (`[--run ID | --job ID]`)
/// is an alternative, not a pipe.
fn tradeloom_args(line: &str) -> Option<Vec<Word>> {
    let line = line.trim_start();
    let line = line.strip_prefix("$ ").unwrap_or(line);
    let words = shell_words(line);
    let first = words.first()?;
    if first.quoted {
        return None;
    }
    let args = if first.text == "tradeloom" || first.text.ends_with("/tradeloom") {
        &words[1..]
    } else if first.text == "cargo" && words.get(1).is_some_and(|w| w.text == "run") {
        let dash = words.iter().position(|w| w.text == "--" && !w.quoted)?;
        let cargo_args = &words[2..dash];
        let other_package = cargo_args.windows(2).any(|pair| {
            ["-p", "--package", "--bin"].contains(&pair[0].text.as_str())
                && pair[1].text != "tradeloom"
        });
        if other_package || cargo_args.iter().any(|w| w.text == "--example") {
            return None;
        }
        &words[dash + 1..]
    } else {
        return None;
    };
    let mut kept = Vec::new();
    let mut depth = 0i32;
    for word in args {
        let text = word.text.as_str();
        if !word.quoted {
            let ends_command = ["&&", "||", ";", "&", "\\"].contains(&text)
                || (text == "|" && depth == 0)
                || text.starts_with('#')
                || text.starts_with('>')
                || text.starts_with('<')
                || text.starts_with("2>")
                || text.starts_with("1>");
            if ends_command {
                break;
            }
            depth += text.matches('[').count() as i32;
            depth -= text.matches(']').count() as i32;
        }
        kept.push(word.clone());
    }
    Some(kept)
}

/// The cells of a Markdown table row (`\|` is a `|` inside a cell).
fn table_cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push('|');
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    if cells.last().is_some_and(|c| c.trim().is_empty()) {
        cells.pop();
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The code spans (`` `…` ``) of a text.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, span)| span.to_string())
        .collect()
}

/// The usages in the first column of a command table row: each code span, with `|` (an
/// alternative, `required|off`) read as a space.
fn table_usages(label: &str, index: usize, line: &str) -> Vec<DocCommand> {
    let cells = table_cells(line);
    let Some(first) = cells.first() else {
        return Vec::new();
    };
    code_spans(first)
        .into_iter()
        .enumerate()
        .map(|(n, span)| DocCommand {
            place: format!("{label}:{}", index + 1),
            line: span.clone(),
            args: shell_words(&span.replace('|', " ")),
            continues_cell: n > 0,
        })
        .collect()
}

/// Every `tradeloom` command line inside fenced code blocks of a Markdown text, and every usage
/// in the first column of a table whose header's first cell is `command`.
fn commands_in(label: &str, text: &str) -> Vec<DocCommand> {
    let mut found = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    let mut command_table = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        if let Some(mark) = marker {
            let run = trimmed.chars().take_while(|c| *c == mark).count();
            if run >= 3 {
                match fence {
                    None => {
                        fence = Some((mark, run));
                        continue;
                    }
                    Some((open, len))
                        if open == mark && run >= len && trimmed[run..].trim().is_empty() =>
                    {
                        fence = None;
                        continue;
                    }
                    Some(_) => {}
                }
            }
        }
        if fence.is_none() {
            if !trimmed.starts_with('|') {
                command_table = false;
            } else if table_cells(trimmed).first().is_some_and(|c| c == "command") {
                command_table = true;
            } else if command_table && !trimmed.starts_with("| ---") {
                found.extend(table_usages(label, index, trimmed));
            }
            continue;
        }
        if let Some(args) = tradeloom_args(line) {
            found.push(DocCommand {
                place: format!("{label}:{}", index + 1),
                line: trimmed.to_string(),
                args,
                continues_cell: false,
            });
        }
    }
    found
}

/// README.md, every Markdown file under docs/src and the crates' READMEs, as (path relative to
/// the repo, text).
fn documentation() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let root = repo();
    let mut paths = vec![root.join("README.md")];
    walk(&root.join("docs/src"), &mut paths);
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/ is readable")
        .map(|entry| entry.unwrap().path().join("README.md"))
        .filter(|readme| readme.is_file())
        .collect();
    crates.sort();
    paths.extend(crates);
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let label = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            (label, text)
        })
        .collect()
}

/// Checks every command of the given Markdown texts; one line per problem, with its place.
fn problems(cli: &mut Cli, files: &[(String, String)]) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut problems = Vec::new();
    let top: Vec<String> = cli.help(&[]).subcommands.clone();
    for (label, text) in files {
        let mut previous: Vec<String> = Vec::new();
        for command in commands_in(label, text) {
            count += 1;
            let mut args = command.args.clone();
            if command.continues_cell && !previous.is_empty() {
                let parent = &previous[..previous.len() - 1];
                let first = args.first().map(|w| w.text.clone()).unwrap_or_default();
                let sibling = cli.help(parent).subcommands.contains(&first);
                if sibling || !top.contains(&first) {
                    let prefix = parent.iter().map(|p| Word {
                        text: p.clone(),
                        quoted: false,
                    });
                    args = prefix.chain(args).collect();
                }
            }
            match cli.check(&args) {
                Ok(path) => previous = path,
                Err(why) => {
                    previous = Vec::new();
                    problems.push(format!("{}: `{}`: {why}", command.place, command.line));
                }
            }
        }
    }
    (count, problems)
}

#[test]
fn every_documented_tradeloom_command_names_real_subcommands_and_flags() {
    let files = documentation();
    let mut cli = Cli::default();
    let (count, problems) = problems(&mut cli, &files);
    assert!(
        problems.is_empty(),
        "{} documented command line(s) do not match the binary:\n{}",
        problems.len(),
        problems.join("\n")
    );
    let readme = commands_in("README.md", &files[0].1).len();
    assert!(
        readme >= 20 && count >= 100,
        "too few `tradeloom` command lines found ({readme} in README.md, {count} in all): \
         is the extraction broken?"
    );
}

#[test]
fn a_misspelt_subcommand_or_flag_is_reported_with_its_place() {
    let text = "\
# Example

tradeloom bogus outside a fence is prose

```sh
tradeloom runs list                         # fine
tradeloom runz list
$ tradeloom killswitch engage --reason \"x --flaten\" --flaten [--run ID | --job ID]
./target/release/tradeloom verify latest --jsn
cargo run --release -- serve --adr 127.0.0.1:1
cargo run -p tradeloom-engine --example x -- --whatever
tradeloom data universe --out u --no-news | head --bogus
tradeloom db statuz
```

| command | what it does |
| --- | --- |
| `runs list` / `shw ID` | a misspelt continuation |
| `flow validate` / `runs [--status S]` / `submitt` | `runs` is `flow runs` here |
| `serve [--auth required\\|off] [--adrr X]` | an escaped alternative |

| name | not a command table |
| --- | --- |
| `bogus --flag` | ignored |
";
    let mut cli = Cli::default();
    let (count, problems) = problems(&mut cli, &[("x.md".to_string(), text.to_string())]);
    assert_eq!(count, 13, "{problems:?}");
    assert_eq!(
        problems,
        [
            "x.md:7: `tradeloom runz list`: `tradeloom` has no subcommand `runz` (it has: run, \
             sweep, spec, runs, report, reconcile, verify, data, simulate, jobs, results, db, serve, \
             up, coordinator, worker, keys, mock-llm, ssrf-check, flow, agents, skills, approve, \
             reject, approvals, order, killswitch, drill, \
             health, connectivity, metrics, bridge, trader, map, deploy, bench, help)",
            "x.md:8: `$ tradeloom killswitch engage --reason \"x --flaten\" --flaten [--run ID | \
             --job ID]`: `tradeloom killswitch engage` does not accept `--flaten`",
            "x.md:9: `./target/release/tradeloom verify latest --jsn`: `tradeloom verify` does \
             not accept `--jsn`",
            "x.md:10: `cargo run --release -- serve --adr 127.0.0.1:1`: `tradeloom serve` does \
             not accept `--adr`",
            "x.md:13: `tradeloom db statuz`: `tradeloom db` has no subcommand `statuz` (it has: \
             migrate, status, help)",
            "x.md:18: `shw ID`: `tradeloom runs` has no subcommand `shw` (it has: list, show, \
             help)",
            "x.md:19: `submitt`: `tradeloom flow` has no subcommand `submitt` (it has: validate, \
             submit, status, patch, cancel, pause, resume, runs, help)",
            "x.md:20: `serve [--auth required|off] [--adrr X]`: `tradeloom serve` does not \
             accept `--adrr`",
        ]
    );
}

#[test]
fn the_readme_is_a_front_door_under_400_lines() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < 400,
        "README.md has {lines} lines: keep it a short front door and move reference material \
         into a chapter of docs/src/"
    );
}

/// The `(target)` of every Markdown link `[text](target)` outside code, with its line number.
fn links_in(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut in_fence = false;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Inline code spans are not links.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            links.push((index + 1, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    links
}

/// The anchors mdBook gives a file's headings (lowercase; letters, digits, `-` and `_` kept,
/// spaces to `-`, the rest dropped; repeats numbered `-1`, `-2`, …).
fn anchors_of(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        // `[text](target)` reads as `text`.
        let mut plain = String::new();
        let mut rest = title;
        while let Some(open) = rest.find('[') {
            plain.push_str(&rest[..open]);
            let inner = &rest[open + 1..];
            match (inner.find("]("), inner.find(')')) {
                (Some(close), Some(end)) if close < end => {
                    plain.push_str(&inner[..close]);
                    rest = &inner[end + 1..];
                }
                _ => {
                    plain.push('[');
                    rest = inner;
                }
            }
        }
        plain.push_str(rest);
        let id: String = plain
            .chars()
            .filter_map(|c| {
                if c.is_alphanumeric() || c == '_' || c == '-' {
                    Some(c.to_ascii_lowercase())
                } else if c.is_whitespace() {
                    Some('-')
                } else {
                    None
                }
            })
            .collect();
        let mut unique = id.clone();
        let mut n = 0;
        while anchors.contains(&unique) {
            n += 1;
            unique = format!("{id}-{n}");
        }
        anchors.insert(unique);
    }
    anchors
}

#[test]
fn every_chapter_is_in_the_summary_and_every_local_link_resolves() {
    let root = repo();
    let files = documentation();
    let summary_path = "docs/src/SUMMARY.md";
    let summary = &files
        .iter()
        .find(|(label, _)| label == summary_path)
        .expect("docs/src/SUMMARY.md exists")
        .1;
    let chapters: BTreeSet<String> = links_in(summary)
        .into_iter()
        .map(|(_, target)| format!("docs/src/{target}"))
        .collect();
    let mut problems = Vec::new();
    for (label, _) in &files {
        if label.starts_with("docs/src/") && label != summary_path && !chapters.contains(label) {
            problems.push(format!("{label}: not listed in {summary_path}"));
        }
    }
    for (label, text) in &files {
        let dir = Path::new(label).parent().unwrap_or(Path::new(""));
        for (line, target) in links_in(text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                PathBuf::from(label)
            } else {
                dir.join(path)
            };
            let normal = normalise(&file);
            let on_disk = root.join(&normal);
            if !on_disk.exists() {
                // A chapter another part of the repository provides is checked by
                // `mdbook build` (create-missing = false).
                let is_chapter = chapters.contains(&normal.to_string_lossy().into_owned());
                if !is_chapter {
                    problems.push(format!("{label}:{line}: link `{target}`: no such file"));
                }
                continue;
            }
            if let Some(anchor) = anchor
                && on_disk.extension().is_some_and(|e| e == "md")
            {
                let text = std::fs::read_to_string(&on_disk).unwrap();
                if !anchors_of(&text).contains(anchor) {
                    problems.push(format!(
                        "{label}:{line}: link `{target}`: no heading with anchor `#{anchor}` in {}",
                        normal.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `a/b/../c` → `a/c` (without touching the file system).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn shell_words_and_usage_brackets_are_read_as_documented() {
    let args = tradeloom_args(
        "tradeloom approvals [--status pending|approved|all] [--run RUN_ID] | jq . # x",
    )
    .unwrap();
    let texts: Vec<&str> = args.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "approvals",
            "[--status",
            "pending|approved|all]",
            "[--run",
            "RUN_ID]"
        ]
    );
    assert_eq!(tradeloom_args("curl -s localhost:8080/health"), None);
    assert_eq!(
        tradeloom_args("cargo run -p tradeloom-engine -- x").map(|a| a.len()),
        None
    );
    let quoted = shell_words("tradeloom flow cancel R --reason 'wrong --symbol'");
    assert_eq!(
        quoted.last(),
        Some(&Word {
            text: "wrong --symbol".to_string(),
            quoted: true
        })
    );
}
