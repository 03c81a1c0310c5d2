// Figures of the dashboard and report.html (a benchmark, not a test): a 1,000,000-bar backtest
// (synthetic 1-minute bars, sma_cross) is run with the CLI, then, in Debian's headless Chromium:
//   - the run page of the dashboard (served by `tradeloom up`): first contentful paint and the
//     time until its price, equity and drawdown charts are drawn (1M equity rows, downsampled on
//     the server);
//   - report.html of the same run opened from the file: its size, first contentful paint and the
//     time until its charts are drawn.
// Each is measured RUNS times in fresh pages; medians and ranges are printed.
//   node figures.mjs            (TRADELOOM_BIN: a release build gives the server's real speed)
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const bin = process.env.TRADELOOM_BIN ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(repo, "target"), "release", "tradeloom");
const chromiumPath = process.env.TRADELOOM_CHROMIUM || "/usr/bin/chromium";
const BARS = Number(process.env.FIGURE_BARS || 1000000);
const RUNS = Number(process.env.FIGURE_RUNS || 5);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tradeloom-figures-"));
const data = path.join(tmp, "data");
const bars = path.join(tmp, "bars.csv");
execFileSync(bin, ["data", "synth", "--symbol", "SYN", "--bars", String(BARS), "--out", bars, "--data-dir", data]);
const spec = path.join(tmp, "spec.yaml");
fs.writeFileSync(spec, [
  "name: figures-1m",
  "mode: backtest",
  "instruments: [{symbol: SYN, price_precision: 2, size_precision: 0}]",
  `data: [{symbol: SYN, path: ${bars}}]`,
  "strategy: {name: sma_cross, params: {fast: 10, slow: 30, quantity: 1}}",
  "execution: {fill_model: next_open, fee_bps: 0, slippage_bps: 0}",
  "account: {initial_cash: 100000, currency: USD}",
].join("\n") + "\n");
const t0 = Date.now();
const out = JSON.parse(execFileSync(bin, ["run", spec, "--data-dir", data, "--json"], { encoding: "utf8", maxBuffer: 1 << 26 }));
const runSeconds = (Date.now() - t0) / 1000;
const runDir = out.run_dir;
const reportBytes = fs.statSync(path.join(runDir, "report.html")).size;

const server = spawn(bin, ["up", "--addr", "127.0.0.1:0", "--data-dir", data], { stdio: ["ignore", "pipe", "ignore"] });
const base = await new Promise((resolve) => createInterface({ input: server.stdout }).once("line", (l) => resolve(l.match(/http:\/\/[0-9.:]+/)[0])));

const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
async function measure(url, ready) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const start = Date.now();
  await page.goto(url);
  await page.waitForFunction(ready, null, { timeout: 60000 });
  const drawn = Date.now() - start;
  const fcp = await page.evaluate(() => (performance.getEntriesByName("first-contentful-paint")[0] || {}).startTime || null);
  await page.close();
  return { fcp, drawn };
}
const stats = (xs) => { const s = xs.slice().sort((a, b) => a - b); return { median: s[s.length >> 1], min: s[0], max: s[s.length - 1] }; };
const fmt = (xs) => { const s = stats(xs); return `${s.median.toFixed(0)} ms (${s.min.toFixed(0)}–${s.max.toFixed(0)})`; };

const dash = [], report = [];
for (let i = 0; i < RUNS; i++) {
  dash.push(await measure(`${base}/#/runs/${out.run_id}`, () =>
    document.querySelectorAll(".chart canvas").length >= 3 && /fills marked/.test((document.getElementById("price-note") || {}).textContent || "") &&
    /rows/.test((document.getElementById("equity-note") || {}).textContent || "")));
  report.push(await measure("file://" + path.join(runDir, "report.html"), () =>
    document.querySelectorAll(".chart canvas").length >= 3 && /fills marked/.test(document.getElementById("price-note").textContent)));
}
await browser.close();
server.kill();
const chart = JSON.parse(fs.readFileSync(path.join(runDir, "chart.json"), "utf8"));
console.log(`run: ${BARS} bars, ${out.metrics.fills} fills, tradeloom run ${runSeconds.toFixed(2)} s; ${chart.instruments[0].candles.length} candles of ${chart.instruments[0].bars_per_candle} bars, ${chart.fills.length} fill markers`);
console.log(`dashboard run page (1M equity rows → 2,000 points): first contentful paint ${fmt(dash.map((x) => x.fcp))}, charts drawn ${fmt(dash.map((x) => x.drawn))}`);
console.log(`report.html: ${(reportBytes / 1e6).toFixed(2)} MB; first contentful paint ${fmt(report.map((x) => x.fcp))}, charts drawn ${fmt(report.map((x) => x.drawn))}`);
fs.rmSync(tmp, { recursive: true, force: true });
