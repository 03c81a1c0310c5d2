// The dashboard in a real browser: Playwright (playwright-core, no browser download) driving
// Debian's headless Chromium against a real `tradeloom up` on loopback, with real data made by
// the CLI (backtests), a simulation job on `tradeloom mock-llm`, a workflow waiting for an
// approval and a paper run replaying GOOG on the wall clock.
//
// Enabled by TRADELOOM_TEST_BROWSER=1 (set by .ci/run); then a missing browser or binary fails.
//   TRADELOOM_BIN            the tradeloom binary (default $CARGO_TARGET_DIR/debug/tradeloom)
//   TRADELOOM_CHROMIUM       the browser (default /usr/bin/chromium)
//   TRADELOOM_SCREENSHOT_DIR where each page's screenshot goes (default ./screenshots)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const enabled = process.env.TRADELOOM_TEST_BROWSER === "1";
const bin = process.env.TRADELOOM_BIN ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(repo, "target"), "debug", "tradeloom");
const chromiumPath = process.env.TRADELOOM_CHROMIUM || "/usr/bin/chromium";
const shots = path.resolve(process.env.TRADELOOM_SCREENSHOT_DIR || path.join(here, "screenshots"));

const children = [];
let tmp, dataDir, configDir, base, operatorKey, viewerKey, browser;
const ids = {};
// Uncaught errors of the pages' scripts; every test ends by checking there were none.
const pageErrors = [];
function noPageErrors() { assert.deepEqual(pageErrors.splice(0), [], "errors in the dashboard's scripts"); }

function run(args) {
  return execFileSync(bin, args, { encoding: "utf8", env: { ...process.env, RUST_LOG: "warn" } });
}

// Starts a long-running tradeloom command and resolves with the URL of its first line.
function service(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, RUST_LOG: "warn", ...(env || {}) }, stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`${args[0]} exited with ${code} before it listened`)));
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (line) => {
      const m = line.match(/http:\/\/[0-9.:]+/);
      if (!m) reject(new Error("no URL in: " + line)); else resolve(m[0]);
      lines.on("line", () => { });
    });
  });
}

async function api(method, p, body, key) {
  const res = await fetch(base + p, {
    method,
    headers: { Authorization: "Bearer " + (key || operatorKey), ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let data; try { data = JSON.parse(text); } catch (_) { data = text; }
  return { status: res.status, data };
}

async function until(what, f, ms = 60000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await f(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
}

function copyDir(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const a = path.join(from, e.name), b = path.join(to, e.name);
    if (e.isDirectory()) copyDir(a, b); else fs.copyFileSync(a, b);
  }
}

async function page(key, viewport) {
  const context = await browser.newContext({ viewport: viewport || { width: 1280, height: 900 } });
  const p = await context.newPage();
  p.on("pageerror", (e) => pageErrors.push(e.message));
  await p.goto(base + "/");
  await p.fill("#login-key", key);
  await p.click("#login-form button[type=submit]");
  await p.waitForSelector("#who-name");
  // The first page drawn after sign-in, before the test navigates.
  await p.waitForFunction(() => !!document.body.dataset.ready);
  return p;
}

async function visit(p, hash) {
  await p.evaluate((h) => { document.body.dataset.ready = ""; location.hash = h; }, hash);
  await p.waitForFunction((h) => document.body.dataset.ready === h, hash, { timeout: 30000 });
  const error = await p.$("#page-error");
  assert.equal(error, null, `page ${hash} failed: ${error && (await error.textContent())}`);
}

async function shot(p, name) {
  fs.mkdirSync(shots, { recursive: true });
  await p.screenshot({ path: path.join(shots, name + ".png"), fullPage: true });
}

before(async () => {
  if (!enabled) return;
  assert.ok(fs.existsSync(chromiumPath), `TRADELOOM_TEST_BROWSER=1 but no browser at ${chromiumPath} (apt-get install chromium, or set TRADELOOM_CHROMIUM)`);
  assert.ok(fs.existsSync(bin), `TRADELOOM_TEST_BROWSER=1 but no tradeloom binary at ${bin} (cargo build -p tradeloom, or set TRADELOOM_BIN)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tradeloom-browser-"));
  dataDir = path.join(tmp, "data");
  configDir = path.join(tmp, "config");
  for (const d of ["specs", "data", "universe", "workflows"]) copyDir(path.join(repo, "examples", d), path.join(configDir, d));

  // Two finished backtests, from the CLI.
  for (const spec of ["goog_sma_cross.yaml", "goog_sma_cross_bar_close.yaml"]) {
    const out = JSON.parse(run(["run", path.join(configDir, "specs", spec), "--data-dir", dataDir, "--json"]));
    (ids.backtests = ids.backtests || []).push(out.run_id);
  }
  // And one that fails midway (a malformed row 1,000): its page still shows what it wrote.
  const goog = fs.readFileSync(path.join(configDir, "data", "goog_1d.csv"), "utf8").split("\n");
  goog[999] = "2008-01-01,abc,1,1,1,1";
  fs.writeFileSync(path.join(configDir, "data", "goog_broken.csv"), goog.join("\n"));
  const broken = path.join(configDir, "specs", "goog_broken.yaml");
  fs.writeFileSync(broken, fs.readFileSync(path.join(configDir, "specs", "goog_sma_cross.yaml"), "utf8")
    .replace("name: goog-sma-cross", "name: goog-broken").replace("goog_1d.csv", "goog_broken.csv"));
  const failed = spawnSync(bin, ["run", broken, "--data-dir", dataDir, "--json"], { encoding: "utf8" });
  assert.equal(failed.status, 1, "a failed run exits 1: " + failed.stderr);
  ids.failed = JSON.parse(failed.stdout).run_id;
  operatorKey = JSON.parse(run(["keys", "create", "--name", "ops", "--role", "operator", "--json", "--data-dir", dataDir])).key;
  viewerKey = JSON.parse(run(["keys", "create", "--name", "watcher", "--role", "viewer", "--json", "--data-dir", dataDir])).key;

  const mock = await service(["mock-llm", "--addr", "127.0.0.1:0"]);
  ids.mock = mock;
  fs.mkdirSync(path.join(configDir, "simulations"), { recursive: true });
  fs.writeFileSync(path.join(configDir, "simulations", "browser.yaml"), [
    "models:",
    `  - {name: momentum-a, base_url: ${mock}/v1, model: momentum}`,
    `  - {name: hold-c, base_url: ${mock}/v1, model: buy_and_hold}`,
    "universe: {path: ../universe}",
    "start_date: 2025-01-02",
    "end_date: 2025-01-08",
    "initial_cash: 10000",
    "max_steps: 12",
  ].join("\n") + "\n");
  base = await service(["up", "--addr", "127.0.0.1:0", "--auth", "required", "--data-dir", dataDir,
    "--config-dir", configDir, "--http-allow", mock.replace("http://", "")]);

  // A simulation job, finished.
  const job = await api("POST", "/simulate/trigger", { config_path: "simulations/browser.yaml" });
  assert.equal(job.status, 202, JSON.stringify(job.data));
  ids.job = job.data.job_id;
  await until("the simulation job", async () => {
    const s = await api("GET", "/simulate/status/" + ids.job);
    return ["completed", "partial", "failed"].includes(s.data.status) && s.data;
  });

  // A workflow that asks before it trades: approve runs a backtest (its orders are the trade).
  const wf = await api("POST", "/workflows", {
    name: "approve-then-trade",
    nodes: [
      { id: "review", type: "hitl", config: { prompt: "Trade GOOG with sma_cross?", expires_after: "1h", default: "reject" } },
      { id: "trade", type: "backtest", needs: ["review"], when: 'review.decision == "approve"', config: { spec_path: "specs/goog_sma_cross.yaml" } },
      { id: "skip", type: "transform", needs: ["review"], when: 'review.decision == "reject"' },
    ],
  });
  assert.equal(wf.status, 201, JSON.stringify(wf.data));
  ids.workflow = wf.data.id;
  const wrun = await api("POST", `/workflows/${ids.workflow}/runs`, { inputs: {} });
  assert.ok(wrun.status < 300, JSON.stringify(wrun.data));
  ids.wrun = wrun.data.run_id;
  await until("the approval", async () => {
    const a = await api("GET", "/approvals?status=pending&run_id=" + ids.wrun);
    return (a.data.approvals || []).length === 1;
  });

  browser = await (await import("playwright-core")).chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  for (const c of children) c.kill("SIGKILL");
  if (tmp && !process.env.TRADELOOM_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

test("every page loads with real data", { skip: !enabled }, async () => {
  const p = await page(operatorKey);
  await visit(p, "#/runs");
  assert.ok((await p.$$("[data-run]")).length >= 2, "both backtests are listed");
  await shot(p, "runs");

  await visit(p, "#/runs/" + ids.backtests[0]);
  await p.waitForSelector("#metrics .stat");
  await p.waitForFunction(() => document.querySelectorAll(".chart canvas").length >= 3);
  await p.waitForFunction(() => /fills marked/.test(document.getElementById("price-note").textContent));
  await p.waitForSelector(".tabs + div table tbody tr td");
  await p.click("[data-tab=Journal]");
  await p.waitForFunction(() => /entries/.test(document.body.textContent));
  await shot(p, "run");

  await visit(p, "#/runs/" + ids.failed);
  assert.match(await p.textContent("#run-error"), /row|decimal/, "the run's error is shown");
  await p.waitForSelector("#metrics");
  await shot(p, "run-failed");

  await visit(p, `#/compare/${ids.backtests[0]}/${ids.backtests[1]}`);
  await p.waitForSelector(".chart canvas");
  await shot(p, "compare");

  await visit(p, "#/jobs");
  assert.ok(await p.$(`a[href="#/jobs/${ids.job}"]`), "the job is listed");
  await shot(p, "jobs");
  await visit(p, "#/jobs/" + ids.job);
  await p.waitForFunction(() => document.querySelectorAll("table tbody tr").length >= 2);
  assert.match(await p.textContent("body"), /momentum-a/);
  const reasoning = await p.$("button:has-text('Reasoning')");
  assert.ok(reasoning, "a completed model-day offers its reasoning");
  await reasoning.click();
  await p.waitForSelector("#model-day pre");
  await shot(p, "job");

  await visit(p, "#/workflows");
  assert.match(await p.textContent("body"), /approve-then-trade/);
  await shot(p, "workflows");
  await visit(p, "#/workflows/" + ids.workflow);
  assert.match(await p.textContent("main"), /Versions[\s\S]*Definition \(version 1\)/);
  await shot(p, "workflow");
  await visit(p, "#/wruns/" + ids.wrun);
  await p.waitForSelector("#dag g.node[data-node=review][data-status=waiting]");
  await shot(p, "workflow-run");

  await visit(p, "#/approvals");
  await p.waitForSelector(".approval");
  await shot(p, "approvals");

  await visit(p, "#/ops");
  await p.waitForSelector("#ks-state");
  await shot(p, "operations");

  // Usable at phone width: nothing wider than the screen but the tables' own scroll boxes.
  const phone = await page(operatorKey, { width: 390, height: 844 });
  for (const h of ["#/runs", "#/runs/" + ids.backtests[0], "#/approvals", "#/ops"]) {
    await visit(phone, h);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${h} is ${overflow}px wider than a phone`);
  }
  await shot(phone, "run-phone");
  await p.context().close();
  await phone.context().close();
  noPageErrors();
});

test("an approval decided in the browser resumes its run and the order appears", { skip: !enabled }, async () => {
  const p = await page(operatorKey);
  await visit(p, "#/approvals");
  const card = `.approval:has(a[href="#/wruns/${ids.wrun}"])`;
  await p.fill(`${card} input.comment`, "looks right");
  await p.click(`${card} [data-decide=approve]`);
  await p.waitForFunction(() => /Decided: approve/.test(document.getElementById("banner").textContent));
  await visit(p, "#/wruns/" + ids.wrun);
  await p.waitForSelector("#dag g.node[data-node=trade][data-status=completed]", { timeout: 60000 });
  await p.click("#dag g.node[data-node=trade]");
  await p.waitForFunction(() => /run_id/.test(document.querySelector("#node-output pre")?.textContent));
  const output = JSON.parse(await p.textContent("#node-output pre"));
  await visit(p, "#/runs/" + output.run_id);
  await p.click("[data-tab=Orders]");
  await p.waitForFunction(() => document.querySelectorAll(".tabs + div table tbody tr td").length > 3);
  assert.match(await p.textContent(".tabs + div"), /GOOG/);
  await shot(p, "approved-run-orders");
  const decided = await api("GET", "/approvals?run_id=" + ids.wrun);
  const a = decided.data.approvals[0];
  assert.equal(a.status, "approved");
  assert.equal(a.decided_by, "ops", "decided as the browser's key");
  assert.equal(a.comment, "looks right");
  await p.context().close();
  noPageErrors();
});

test("a paper run ticks live over /ws, and the kill switch engaged in the browser stops its orders", { skip: !enabled }, async () => {
  // GOOG's 2,148 daily bars at 20 a second: a fill every second or two for about 100 s.
  const spec = fs.readFileSync(path.join(configDir, "specs", "goog_paper.yaml"), "utf8")
    .replaceAll("speed: max", "speed: 1728000")
    .replace("../data/goog_1d.csv", "data/goog_1d.csv");
  const started = await api("POST", "/runs", { spec });
  assert.equal(started.status, 202, JSON.stringify(started.data));
  const runId = started.data.run_id;
  try {
    const p = await page(operatorKey);
    await visit(p, "#/runs/" + runId);
    await p.evaluate(() => { window.__sameDocument = true; });
    await p.waitForSelector("#live-fills li", { timeout: 30000 }).catch(async (e) => { await shot(p, "paper-live-failed"); throw e; });
    assert.equal(await p.evaluate(() => window.__sameDocument), true, "no reload");
    await shot(p, "paper-live");

    const ops = await page(operatorKey);
    await visit(ops, "#/ops");
    await ops.fill("#ks-reason", "browser test");
    const engaged = ops.waitForResponse((r) => r.url().endsWith("/killswitch/engage"));
    await ops.click("#ks-engage");
    await ops.click("#confirm-ok");
    assert.equal((await engaged).status(), 200);
    const returnedAt = new Date().toISOString();
    await ops.waitForFunction(() => /engaged/.test(document.getElementById("ks-state").textContent));
    await shot(ops, "operations-engaged");

    // The run goes on (bars keep coming) but no order is accepted after engage returned.
    await new Promise((r) => setTimeout(r, 4000));
    const journal = [];
    for (let offset = 0; offset !== null && offset !== undefined;) {
      const pg = await api("GET", `/runs/${runId}/journal?limit=5000&offset=${offset}`);
      journal.push(...pg.data.entries); offset = pg.data.next_offset;
    }
    const accepted = journal.filter((e) => e.event === "order_accepted");
    assert.ok(accepted.length > 0, "the strategy placed orders before the kill switch");
    const late = accepted.filter((e) => e.wall_ts > returnedAt);
    assert.deepEqual(late, [], "orders accepted after engage returned");
    const after = journal.filter((e) => e.wall_ts > returnedAt);
    assert.ok(after.length > 0, "the run kept processing after engage");
    await p.context().close();
    await ops.context().close();
    noPageErrors();
  } finally {
    await api("POST", "/killswitch/release", { reason: "browser test done" });
    await api("POST", `/runs/${runId}/stop`, {});
  }
});

test("a viewer key sees no operator buttons, and the API refuses the action if forced", { skip: !enabled }, async () => {
  const p = await page(viewerKey);
  assert.match(await p.textContent("#who-name"), /watcher · viewer/);
  await visit(p, "#/ops");
  await p.waitForSelector("#ks-state");
  assert.equal(await p.$("#ks-engage"), null);
  assert.equal(await p.$("#ks-release"), null);
  await visit(p, "#/runs");
  assert.equal(await p.$("#run-spec"), null, "no start form");
  await visit(p, "#/workflows/" + ids.workflow);
  assert.equal(await p.$("#wf-start"), null);
  await shot(p, "viewer-operations");
  const forced = await p.evaluate(async (key) => {
    const r = await fetch("/killswitch/engage", { method: "POST", headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" }, body: JSON.stringify({ reason: "forced" }) });
    return { status: r.status, body: await r.json() };
  }, viewerKey);
  assert.equal(forced.status, 403);
  assert.equal(forced.body.error, "forbidden");
  const state = await api("GET", "/killswitch");
  assert.equal(state.data.global.engaged, false, "the viewer did not engage it");
  await p.context().close();
  noPageErrors();
});

test("a running job is paused, resumed and cancelled from its page", { skip: !enabled }, async () => {
  // Slow model-days (~300 ms per LLM call), so that the job is still running between clicks.
  const started = await api("POST", "/simulate/trigger", { config: {
    models: [{ name: "slow", base_url: ids.mock + "/v1", model: "fault-slow-300" }],
    universe: { path: path.join(configDir, "universe") },
    start_date: "2025-01-02", end_date: "2025-02-28", max_steps: 6,
  } });
  assert.equal(started.status, 202, JSON.stringify(started.data));
  const job = started.data.job_id;
  const status = async () => (await api("GET", "/simulate/status/" + job + "?details_limit=1")).data;
  try {
    const viewer = await page(viewerKey);
    await visit(viewer, "#/jobs/" + job);
    await viewer.waitForSelector("#job-progress .pill");
    assert.equal(await viewer.$("#job-controls"), null, "a viewer gets no job controls");
    await viewer.context().close();

    const p = await page(operatorKey);
    await visit(p, "#/jobs/" + job);
    await p.click("#job-pause");
    await until("the job paused", async () => (await status()).status === "paused");
    await p.waitForSelector("#job-resume");
    assert.match(await p.textContent("#job-progress"), /paused/);
    await shot(p, "job-paused");
    await p.click("#job-resume");
    await until("the job running again", async () => (await status()).status === "running");
    await p.waitForSelector("#job-pause");
    await p.click("#job-cancel");
    await p.click("#confirm-ok");
    await until("the job cancelled", async () => (await status()).status === "cancelled");
    await p.waitForFunction(() => !document.getElementById("job-controls"));
    const end = await status();
    assert.ok(end.progress.cancelled > 0, JSON.stringify(end.progress));
    await p.context().close();
    noPageErrors();
  } finally {
    await api("POST", "/simulate/" + job + "/cancel");
  }
});
