//! `tradeloom flow validate` on the example workflow and on broken definitions.

use tempfile::TempDir;

use crate::{repo, stderr, stdout, tradeloom};

#[test]
fn the_example_workflow_compiles() {
    let data = TempDir::new().unwrap();
    let file = repo().join("examples/workflows/review-and-trade.yaml");
    let out = tradeloom(data.path(), &["flow", "validate", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("workflow `review-and-trade` compiles: 7 nodes"),
        "{text}"
    );
    let json = tradeloom(
        data.path(),
        &["flow", "validate", file.to_str().unwrap(), "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["ir_hash"].as_str().unwrap().len(), 64);
    let order: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let pos = |id: &str| order.iter().position(|n| *n == id).unwrap();
    assert!(
        pos("a") < pos("b")
            && pos("b") < pos("review")
            && pos("review") < pos("go")
            && pos("go") < pos("notify"),
        "{order:?}"
    );
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let data = TempDir::new().unwrap();
    let file = data.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: bad\nnodes:\n  - {id: a, type: transform, needs: [c]}\n  - {id: b, type: transform, needs: [a, ghost]}\n  - {id: c, type: transform, needs: [b]}\n",
    )
    .unwrap();
    let out = tradeloom(data.path(), &["flow", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.yaml:4") && err.contains("ghost"), "{err}");
    assert!(err.contains("cycle"), "{err}");
    let json = tradeloom(
        data.path(),
        &["flow", "validate", file.to_str().unwrap(), "--json"],
    );
    assert_eq!(json.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["errors"].as_array().unwrap().len() >= 2, "{v}");
}

#[test]
fn every_example_workflow_compiles_without_warnings() {
    let data = TempDir::new().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("examples/workflows"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
        })
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "daily-simulation.yaml",
        "review-and-trade.yaml",
        "trading-team.yaml",
    ] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
    for file in &files {
        let out = tradeloom(
            data.path(),
            &["flow", "validate", file.to_str().unwrap(), "--json"],
        );
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "{}: {text}{}",
            file.display(),
            stderr(&out)
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["valid"], true, "{}: {text}", file.display());
        assert_eq!(
            v["warnings"],
            serde_json::json!([]),
            "{}: {text}",
            file.display()
        );
    }
}
