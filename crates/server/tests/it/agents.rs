//! `/agents` and `/skills` over real HTTP with API keys: versions, ownership bound to the
//! calling key, soft deletes, and every refusal as a JSON error.

use reqwest::{Client, Method};
use serde_json::{Value, json};
use tradeloom_server::AuthMode;
use tradeloom_store::Role;

use crate::harness::{key, read, serve};

async fn call(
    c: &Client,
    method: Method,
    url: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = c.request(method, url);
    if !key.is_empty() {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let (status, headers, text) = read(req.send().await.unwrap()).await;
    if status.as_u16() == 204 {
        return (204, Value::Null);
    }
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{status}: {text}"
    );
    (status.as_u16(), serde_json::from_str(&text).unwrap())
}

fn analyst(model: &str) -> Value {
    json!({"name": "analyst", "description": "reads the tape",
           "model": {"base_url": "http://127.0.0.1:9/v1", "model": model, "temperature": 0.2},
           "system_prompt": "Be brief.", "tools": ["calc"], "memory": {"lessons": 5, "max_tokens": 500}})
}

fn momentum() -> Value {
    json!({"name": "momentum", "description": "Momentum of closes",
           "source": "def main(input):\n    return {\"signal\": \"hold\"}\n",
           "input_schema": {"type": "object", "properties": {"closes": {"type": "array", "items": {"type": "number"}}}, "required": ["closes"]},
           "output_schema": {"type": "object", "properties": {"signal": {"enum": ["buy", "sell", "hold"]}}, "required": ["signal"]}})
}

#[tokio::test]
async fn agents_are_versioned_and_owned_by_the_key_that_created_them() {
    let s = serve(|s| s.with_auth(AuthMode::Required)).await;
    let alice = key(&*s.store, "alice", Role::Operator).await;
    let bob = key(&*s.store, "bob", Role::Operator).await;
    let viewer = key(&*s.store, "eve", Role::Viewer).await;
    let admin = key(&*s.store, "root", Role::Admin).await;
    let c = Client::new();
    let agents = format!("{}/agents", s.base);
    let one = format!("{agents}/analyst");

    let (status, _, body) = read(c.get(&agents).send().await.unwrap()).await;
    assert_eq!(status, 401, "{body}");
    let (status, v) = call(&c, Method::POST, &agents, &viewer, Some(analyst("m1"))).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );

    let (status, v) = call(&c, Method::POST, &agents, &alice, Some(analyst("m1"))).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["version"].as_u64()),
        (Some("analyst"), Some(1))
    );
    let (status, v) = call(&c, Method::POST, &agents, &bob, Some(analyst("m2"))).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("agent_exists")),
        "{v}"
    );

    // Another key may read but not write it; its owner and an admin may.
    let (status, v) = call(&c, Method::PUT, &one, &bob, Some(analyst("m2"))).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("not_owner")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("alice"), "{v}");
    let mut next = analyst("m2");
    next.as_object_mut().unwrap().remove("name");
    let (status, v) = call(&c, Method::PUT, &one, &alice, Some(next)).await;
    assert_eq!(
        (status, v["version"].as_u64(), v["changed"].as_bool()),
        (200, Some(2), Some(true)),
        "{v}"
    );
    let (status, v) = call(&c, Method::PUT, &one, &alice, Some(analyst("m2"))).await;
    assert_eq!(
        (status, v["version"].as_u64(), v["changed"].as_bool()),
        (200, Some(2), Some(false)),
        "{v}"
    );
    let (status, v) = call(&c, Method::PUT, &one, &admin, Some(analyst("m3"))).await;
    assert_eq!((status, v["version"].as_u64()), (200, Some(3)), "{v}");

    let (status, v) = call(&c, Method::GET, &one, &viewer, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 3);
    assert_eq!(v["owner"], "alice");
    assert_eq!(v["created_by"], "root");
    assert_eq!(v["definition"]["model"]["model"], "m3");
    assert_eq!(
        v["definition"]["memory"],
        json!({"lessons": 5, "max_tokens": 500}),
        "passed through"
    );
    let versions: Vec<(u64, &str)> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["version"].as_u64().unwrap(),
                x["created_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(1, "alice"), (2, "alice"), (3, "root")]);
    let (status, v) = call(&c, Method::GET, &format!("{one}/versions/1"), &viewer, None).await;
    assert_eq!(
        (status, v["definition"]["model"]["model"].as_str()),
        (200, Some("m1")),
        "{v}"
    );
    let (status, v) = call(&c, Method::GET, &format!("{one}/versions/9"), &viewer, None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("agent_not_found")),
        "{v}"
    );
    let (status, v) = call(&c, Method::GET, &agents, &viewer, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["items"][0]["latest_version"], 3, "{v}");

    // A name in the body must be the path's.
    let mut renamed = analyst("m4");
    renamed["name"] = json!("other");
    let (status, v) = call(&c, Method::PUT, &one, &alice, Some(renamed)).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("invalid_agent")),
        "{v}"
    );

    // Deleting is the owner's too; afterwards the name is gone but not its numbers.
    let (status, v) = call(&c, Method::DELETE, &one, &bob, None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("not_owner")),
        "{v}"
    );
    let (status, _) = call(&c, Method::DELETE, &one, &alice, None).await;
    assert_eq!(status, 204);
    let (status, v) = call(&c, Method::GET, &one, &viewer, None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("agent_not_found")),
        "{v}"
    );
    let (status, v) = call(&c, Method::DELETE, &one, &alice, None).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = call(&c, Method::POST, &agents, &bob, Some(analyst("m5"))).await;
    assert_eq!((status, v["version"].as_u64()), (201, Some(4)), "{v}");
    let (_, v) = call(&c, Method::GET, &one, &viewer, None).await;
    assert_eq!(v["owner"], "bob", "{v}");
}

#[tokio::test]
async fn invalid_agents_and_skills_are_422_naming_every_field() {
    let s = serve(|s| s).await;
    let c = Client::new();
    let agents = format!("{}/agents", s.base);
    let skills = format!("{}/skills", s.base);
    let bad = json!({"name": "Bad Name", "model": {"base_url": "ftp://x", "model": "", "temperature": 9.0},
                     "tools": ["buy", "skill:missing"], "memory": "lots"});
    let (status, v) = call(&c, Method::POST, &agents, "", Some(bad)).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("invalid_agent")),
        "{v}"
    );
    let paths: Vec<&str> = v["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "name",
            "model.base_url",
            "model.model",
            "model.temperature",
            "tools[0]",
            "memory",
            "tools[1]"
        ],
        "{v}"
    );
    let (status, v) = call(
        &c,
        Method::POST,
        &agents,
        "",
        Some(json!({"name": "a", "model": {"base_url": "http://x", "model": "m", "api_key_env": "NOT_ALLOWED_KEY"}})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(
        v["details"]["errors"][0]["path"], "model.api_key_env",
        "{v}"
    );
    // Memory settings are a simulation model's: lessons 0 to 50.
    let (status, v) = call(
        &c,
        Method::POST,
        &agents,
        "",
        Some(json!({"name": "a", "model": {"base_url": "http://x", "model": "m"}, "memory": {"lessons": 99}})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["details"]["errors"][0]["path"], "memory.lessons", "{v}");
    let (status, v) = call(
        &c,
        Method::POST,
        &agents,
        "",
        Some(json!({"name": "a", "model": {"base_url": "http://x", "model": "m"}, "colour": 1})),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("invalid_agent")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("colour"), "{v}");
    let (status, _, body) = read(
        c.post(&agents)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let mut bad_skill = momentum();
    bad_skill["input_schema"] = json!({"type": "object", "properties": {"x": {"pattern": "^a"}}});
    bad_skill["output_schema"] = json!("text");
    let (status, v) = call(&c, Method::POST, &skills, "", Some(bad_skill)).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("invalid_skill")),
        "{v}"
    );
    let paths: Vec<&str> = v["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["input_schema", "output_schema"], "{v}");

    // A registered skill makes `skill:momentum` (and its version) a valid agent tool.
    let (status, v) = call(&c, Method::POST, &skills, "", Some(momentum())).await;
    assert_eq!((status, v["version"].as_u64()), (201, Some(1)), "{v}");
    let (status, v) = call(&c, Method::POST, &agents, "", Some(json!({"name": "quant",
        "model": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}, "tools": ["skill:momentum@1"]}))).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = call(&c, Method::POST, &agents, "", Some(json!({"name": "quant2",
        "model": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}, "tools": ["skill:momentum@2"]}))).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("version 2 of skill `momentum`"),
        "{v}"
    );
    let (status, v) = call(&c, Method::GET, &format!("{skills}/momentum"), "", None).await;
    assert_eq!(
        (status, v["definition"]["function"].as_str()),
        (200, Some("main")),
        "{v}"
    );
    let (status, v) = call(&c, Method::GET, &format!("{skills}/nothing"), "", None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("skill_not_found")),
        "{v}"
    );
}

/// A simulation model naming an agent whose tools a simulation does not have is refused when
/// the job is created: 422 naming the agent's version and the tool; no job is made.
#[tokio::test]
async fn a_simulation_refuses_an_agent_with_a_tool_it_lacks() {
    let s = serve(|s| s).await;
    let c = Client::new();
    let agents = format!("{}/agents", s.base);
    for (name, tool) in [("planner", "patch_workflow"), ("skilled", "skill:momentum")] {
        if tool.starts_with("skill:") {
            let (status, v) = call(
                &c,
                Method::POST,
                &format!("{}/skills", s.base),
                "",
                Some(momentum()),
            )
            .await;
            assert_eq!(status, 201, "{v}");
        }
        let agent = json!({"name": name,
                           "model": {"base_url": "http://127.0.0.1:9/v1", "model": "momentum"},
                           "tools": ["calc", tool]});
        let (status, v) = call(&c, Method::POST, &agents, "", Some(agent)).await;
        assert_eq!(status, 201, "{v}");
        let config = json!({
            "models": [{"name": "a", "agent": name}],
            "universe": {"path": concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/universe")},
            "start_date": "2025-01-02",
            "end_date": "2025-01-03",
        });
        let (status, v) = call(
            &c,
            Method::POST,
            &format!("{}/simulate/trigger", s.base),
            "",
            Some(json!({"config": config})),
        )
        .await;
        assert_eq!(
            (status, v["error"].as_str()),
            (422, Some("unsupported_agent_tool")),
            "{v}"
        );
        assert_eq!(v["details"]["agent"], format!("{name}@1"), "{v}");
        assert_eq!(v["details"]["tool"], tool, "{v}");
        assert_eq!(v["details"]["place"], "config: models[0].agent", "{v}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("agent `{name}@1` lists tool `{tool}`")),
            "{message}"
        );
    }
    assert!(
        s.store.all_jobs().await.unwrap().is_empty(),
        "no job was made"
    );
}
