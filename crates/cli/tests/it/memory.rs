//! Memory and reflection over real HTTP: `tradeloom serve` on loopback with models on a real
//! `tradeloom mock-llm`; `GET /simulate/{job_id}/memory` and the memory of `explain`.

use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;

use crate::service::Service;
use crate::simulate::{client, config, get, post, wait_done};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_served_per_model_and_day() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let api = Service::serve_for(data.path(), &mock);
    let client = client();
    let mut body = config(
        &mock,
        &[("mem", "momentum"), ("plain", "mean_reversion")],
        "2025-01-07",
    );
    body["models"][0]["memory"] = json!({"lessons": 3, "max_tokens": 400});
    let (code, started) = post(
        &client,
        format!("{}/simulate/trigger", api.url),
        &json!({"config": body}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let done = wait_done(&client, &api.url, &job_id).await;
    assert_eq!(done["status"], "completed", "{done}");

    let (code, all) = get(&client, format!("{}/simulate/{job_id}/memory", api.url)).await;
    assert_eq!(code, StatusCode::OK, "{all}");
    assert_eq!(all["job_id"], job_id.as_str());
    assert_eq!(
        all["settings"],
        json!({"mem": {"lessons": 3, "max_tokens": 400, "reflect": true}, "plain": null})
    );
    let entries = all["entries"].as_array().unwrap();
    let dates: Vec<&str> = entries
        .iter()
        .map(|e| e["date"].as_str().unwrap())
        .collect();
    assert_eq!(
        dates,
        ["2025-01-02", "2025-01-03", "2025-01-06", "2025-01-07"],
        "{all}"
    );
    for e in entries {
        assert_eq!(e["model"], "mem");
        let lesson = e["lesson"].as_str().unwrap();
        assert!(
            lesson.starts_with(&format!("On {}", e["date"].as_str().unwrap())),
            "{e}"
        );
        assert!(
            e["portfolio_value"].is_string() && e["change"].is_string(),
            "exact text: {e}"
        );
        assert!(e["decisions"].is_array(), "{e}");
    }
    let (_, one) = get(
        &client,
        format!("{}/simulate/{job_id}/memory?model=plain", api.url),
    )
    .await;
    assert_eq!(one["entries"], json!([]), "{one}");
    assert_eq!(one["settings"], json!({"plain": null}));

    // explain carries the day's entry and, in its reasoning, the reflection.
    let (code, day) = get(
        &client,
        format!(
            "{}/simulate/{job_id}/explain?model=mem&date=2025-01-06",
            api.url
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{day}");
    assert_eq!(
        day["memory"],
        entries[2]
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.remove("model");
                serde_json::Value::Object(o)
            })
            .unwrap()
    );
    let reasoning = day["reasoning"].as_array().unwrap();
    let opening = reasoning.iter().find(|m| m["role"] == "user").unwrap()["content"]
        .as_str()
        .unwrap();
    assert!(
        opening.contains("Memory (your last 2 sessions, oldest first):"),
        "{opening}"
    );
    let last = reasoning.last().unwrap();
    assert_eq!(
        (last["role"].as_str(), last["content"].as_str()),
        (Some("assistant"), entries[2]["lesson"].as_str())
    );
    let (_, plain_day) = get(
        &client,
        format!(
            "{}/simulate/{job_id}/explain?model=plain&date=2025-01-06",
            api.url
        ),
    )
    .await;
    assert!(plain_day.get("memory").is_none(), "{plain_day}");

    // Bad requests name what was wrong.
    let (code, e) = get(
        &client,
        format!("{}/simulate/{job_id}/memory?model=nobody", api.url),
    )
    .await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("model_not_found")),
        "{e}"
    );
    assert_eq!(e["details"]["models"], json!(["mem", "plain"]));
    let (code, e) = get(&client, format!("{}/simulate/no-such-job/memory", api.url)).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("job_not_found")),
        "{e}"
    );
    let (code, e) = get(
        &client,
        format!("{}/simulate/{job_id}/memory?modle=mem", api.url),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{e}");
    assert!(e["message"].as_str().unwrap().contains("modle"), "{e}");

    // A bad memory block is refused at the trigger, naming the field.
    let mut bad = config(&mock, &[("m", "momentum")], "2025-01-07");
    bad["models"][0]["memory"] = json!({"lessons": 99});
    let (code, e) = post(
        &client,
        format!("{}/simulate/trigger", api.url),
        &json!({"config": bad}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("models[0].memory.lessons"),
        "{e}"
    );
}
