// The tradeloom dashboard: a single page over the REST API and /ws, no framework, no build step.
// Pages (hash routes): #/runs, #/runs/ID, #/compare/A/B, #/jobs, #/jobs/ID, #/workflows,
// #/workflows/ID, #/wruns/ID, #/approvals, #/ops.
(function () {
  "use strict";

  const KEY = "tradeloom.api_key";
  const RANK = { viewer: 1, operator: 2, admin: 3 };
  const me = { name: null, role: null };
  let cleanup = [];   // closers of the current page (sockets, timers, charts)
  let generation = 0; // bumped on every navigation: late answers of a left page are dropped
  const current = () => { const g = generation; return () => g === generation; };

  // ---------- DOM helpers ----------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  // replaceChildren without the nulls of elements a role does not get.
  const put = (el, ...kids) => el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
  const view = () => $("view");
  const pill = (s) => h("span", { class: "pill " + (s || "") }, s || "–");
  const can = (role) => (RANK[me.role] || 0) >= RANK[role];
  // Operator-only controls are not drawn at all for a viewer key (the API refuses them anyway).
  const operator = (el) => (can("operator") ? el : null);
  const fmtTime = (t) => (t ? String(t).replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "–");
  const fmtNum = (v, d) => (v === null || v === undefined || v === "" ? "–" : typeof v === "number" ? v.toFixed(d === undefined ? 2 : d) : String(v));

  function banner(message, info) {
    const b = $("banner");
    if (!message) { b.hidden = true; return; }
    b.textContent = message;
    b.className = "banner" + (info ? " info" : "");
    b.hidden = false;
  }

  // ---------- API ----------
  function key() { return sessionStorage.getItem(KEY) || ""; }

  async function api(path, opts) {
    opts = opts || {};
    const headers = { Accept: "application/json" };
    if (key()) headers.Authorization = "Bearer " + key();
    let body;
    if (opts.body !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(opts.body); }
    const res = await fetch(path, { method: opts.method || "GET", headers, body });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (res.status === 401) { showLogin("The API refused the key: " + ((data && data.message) || "unauthorized")); }
    if (!res.ok) {
      const err = new Error((data && data.message) || res.status + " " + res.statusText);
      err.status = res.status; err.code = data && data.error; err.body = data;
      throw err;
    }
    return data;
  }

  async function apiText(path) {
    const headers = {};
    if (key()) headers.Authorization = "Bearer " + key();
    const res = await fetch(path, { headers });
    return res.ok ? res.text() : "";
  }

  function socket(query, onEvent) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let after = 0, ws = null, closed = false, retry = 500;
    const dot = h("span", { class: "live", title: "live updates" });
    function open() {
      const q = new URLSearchParams(query);
      if (after) q.set("after_seq", after);
      if (key()) q.set("api_key", key());
      ws = new WebSocket(proto + "//" + location.host + "/ws?" + q.toString());
      ws.onopen = () => { dot.classList.add("on"); retry = 500; };
      ws.onmessage = (m) => {
        let ev; try { ev = JSON.parse(m.data); } catch (_) { return; }
        if (ev.seq) after = ev.seq;
        onEvent(ev);
      };
      ws.onclose = () => {
        dot.classList.remove("on");
        if (!closed) { setTimeout(open, retry); retry = Math.min(retry * 2, 10000); }
      };
    }
    open();
    cleanup.push(() => { closed = true; if (ws) ws.close(); });
    return dot;
  }

  function every(ms, f) { const t = setInterval(f, ms); cleanup.push(() => clearInterval(t)); }

  // ---------- sign-in ----------
  function showLogin(message) {
    const d = $("login");
    $("login-error").textContent = message || "";
    if (!d.open) d.showModal();
  }

  async function whoami() {
    try {
      const who = await api("/me");
      me.name = who.name; me.role = who.role;
      put($("who"), ...[
        h("span", { id: "who-name" }, who.name + " · " + who.role),
        key() ? h("button", { type: "button", onclick: () => { sessionStorage.removeItem(KEY); location.reload(); } }, "Sign out") : null,
      ].filter(Boolean));
      return true;
    } catch (e) {
      if (e.status !== 401) banner("Cannot reach the API: " + e.message);
      showLogin(e.status === 401 && key() ? e.message : "");
      return false;
    }
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("login-key").value.trim());
    if (await whoami()) { $("login").close(); route(); }
  });

  // ---------- confirmation ----------
  function confirmBox(title, text, placeholder) {
    return new Promise((resolve) => {
      const d = $("confirm");
      $("confirm-title").textContent = title;
      $("confirm-text").textContent = text;
      const input = $("confirm-input");
      input.value = ""; input.placeholder = placeholder || ""; input.hidden = !placeholder;
      const done = (ok) => { d.close(); resolve(ok ? (placeholder ? input.value : true) : null); };
      $("confirm-ok").onclick = (e) => { e.preventDefault(); if (placeholder && !input.value.trim()) { input.focus(); return; } done(true); };
      $("confirm-cancel").onclick = () => done(false);
      d.showModal();
    });
  }

  // ---------- tables ----------
  function table(columns, rows, render) {
    return h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.length ? rows.map(render) : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "Nothing yet.")))));
  }

  // A paged table over an endpoint answering {columns, rows, total, next_offset}.
  function pagedArtifact(url, limit) {
    const box = h("div", {});
    let offset = 0;
    async function load() {
      const sep = url.includes("?") ? "&" : "?";
      let page;
      try { page = await api(url + sep + "limit=" + limit + "&offset=" + offset); } catch (e) { put(box, h("p", { class: "muted" }, e.message)); return; }
      const cols = page.columns || [];
      put(box, 
        table(cols, page.rows || [], (r) => h("tr", {}, cols.map((c) => h("td", {}, r[c] === null ? "" : r[c])))),
        h("div", { class: "row" },
          h("button", { type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - limit); load(); } }, "‹ Prev"),
          h("span", { class: "muted" }, page.total ? (offset + 1) + "–" + (offset + (page.rows || []).length) + " of " + page.total : "0 rows"),
          h("button", { type: "button", disabled: !page.next_offset, onclick: () => { offset = page.next_offset; load(); } }, "Next ›")));
    }
    load();
    return box;
  }

  function tabs(spec) {
    const body = h("div", {});
    const buttons = spec.map(([label, make], i) => h("button", {
      type: "button", "data-tab": label, onclick: (e) => {
        buttons.forEach((b) => b.classList.remove("active"));
        e.currentTarget.classList.add("active");
        put(body, make());
      },
    }, label));
    buttons[0].classList.add("active");
    body.appendChild(spec[0][1]());
    return h("div", {}, h("div", { class: "tabs" }, buttons), body);
  }

  // ---------- charts ----------
  const TC = window.TradeloomCharts;
  function toSeconds(ts) {
    if (ts === null || ts === undefined) return null;
    if (/^\d+$/.test(String(ts))) return Math.floor(Number(ts) / 1e9);
    const ms = Date.parse(ts);
    return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
  }
  function chartBox(height) { return h("div", { class: "chart", style: "height:" + height + "px" }); }
  function keep(chartObj) { cleanup.push(() => { try { chartObj.chart.remove(); } catch (_) { } }); return chartObj; }
  function drawdownOf(points) {
    let peak = -Infinity;
    return points.map((p) => { peak = Math.max(peak, p.value); return { time: p.time, value: peak > 0 ? -(1 - p.value / peak) * 100 : 0 }; });
  }

  // ---------- pages: runs ----------
  async function runsPage(params) {
    const form = h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); load(0); } },
      h("select", { id: "f-mode" }, ["all", "backtest", "paper", "order"].map((m) => h("option", { value: m }, "mode: " + m))),
      h("select", { id: "f-status" }, ["all", "running", "completed", "failed", "interrupted"].map((m) => h("option", { value: m }, "status: " + m))),
      h("input", { id: "f-name", placeholder: "name contains…" }),
      h("button", { type: "submit" }, "Filter"),
      h("button", { type: "button", id: "compare", onclick: () => {
        const picked = [...document.querySelectorAll("input.pick:checked")].map((c) => c.value);
        if (picked.length !== 2) { banner("Tick exactly two runs to compare.", true); return; }
        location.hash = "#/compare/" + picked[0] + "/" + picked[1];
      } }, "Compare ticked"));
    const list = h("div", {});
    put(view(), h("h1", {}, "Runs"), operator(startRunCard()), form, list);
    async function load(offset) {
      const q = new URLSearchParams({ mode: $("f-mode").value, status: $("f-status").value, limit: 50, offset: offset });
      if ($("f-name").value) q.set("name", $("f-name").value);
      const page = await api("/runs?" + q);
      put(list, table(["", "name", "mode", "status", "strategy", "instruments", "return %", "final equity", "created"], page.runs, (r) =>
        h("tr", { "data-run": r.run_id },
          h("td", {}, h("input", { type: "checkbox", class: "pick", value: r.run_id })),
          h("td", {}, h("a", { href: "#/runs/" + r.run_id }, r.name || r.run_id.slice(0, 8))),
          h("td", {}, r.mode), h("td", {}, pill(r.status)), h("td", {}, r.strategy),
          h("td", {}, (r.instruments || []).join(", ")),
          h("td", { class: r.total_return_pct < 0 ? "neg" : "pos" }, fmtNum(r.total_return_pct)),
          h("td", {}, r.final_equity || "–"), h("td", {}, fmtTime(r.created_at)))),
        h("div", { class: "row" },
          h("span", { class: "muted" }, page.total + " runs"),
          offset > 0 ? h("button", { type: "button", onclick: () => load(Math.max(0, offset - 50)) }, "‹ Prev") : null,
          page.next_offset ? h("button", { type: "button", onclick: () => load(page.next_offset) }, "Next ›") : null));
    }
    await load(0);
  }

  function startRunCard() {
    const spec = h("textarea", { id: "run-spec", placeholder: "name: my-run\nmode: backtest\n… (a run spec, as `tradeloom run SPEC` reads it)" });
    return h("details", { class: "card" }, h("summary", {}, "Start a run"), spec,
      h("div", { class: "row" }, h("button", { type: "button", class: "primary", onclick: async () => {
        try { const r = await api("/runs", { method: "POST", body: { spec: spec.value } }); location.hash = "#/runs/" + r.run_id; }
        catch (e) { banner("Not started: " + e.message); }
      } }, "Start")));
  }

  function metricsGrid(m, currency) {
    const cell = (label, v, cls) => h("div", { class: "stat" }, h("span", {}, label), h("b", { class: cls || "" }, v));
    return h("div", { class: "grid", id: "metrics" },
      cell("Final equity", (m.final_equity || "–") + " " + (currency || "")),
      cell("Total return", fmtNum(m.total_return_pct) + " %", m.total_return_pct < 0 ? "neg" : "pos"),
      cell("Max drawdown", fmtNum(m.max_drawdown_pct) + " %"),
      cell("Sharpe", fmtNum(m.sharpe, 3)),
      cell("Trades", fmtNum(m.trades, 0)),
      cell("Win rate", fmtNum(m.win_rate_pct) + " %"),
      cell("Fees", m.fees || "–"),
      cell("Bars", fmtNum(m.bars, 0)));
  }

  async function runPage(id) {
    // The chart and the curve are asked for at once with the run (a finished run's answer them;
    // a running one's refuse with 409 and are not used).
    const quiet = (p) => { p.catch(() => { }); return p; };
    const chartP = quiet(api("/runs/" + encodeURIComponent(id) + "/chart"));
    const curveP = quiet(api("/runs/" + encodeURIComponent(id) + "/equity?max_points=2000"));
    const run = await api("/runs/" + encodeURIComponent(id));
    const meta = run.metadata || run;
    const metrics = run.metrics || {};
    const running = (meta.status || run.status) === "running";
    const priceEl = chartBox(320), eqEl = chartBox(240), ddEl = chartBox(140);
    const priceNote = h("div", { class: "muted", id: "price-note" }), equityNote = h("div", { class: "muted", id: "equity-note" });
    const head = h("div", {},
      h("h1", {}, (meta.name || run.run_id || id) + " "),
      h("p", { class: "muted" }, "Run ", h("code", {}, meta.run_id || id), " · ", meta.mode, " · ", pill(meta.status), " · ", meta.strategy || "",
        running ? h("span", {}, " · ", h("span", { id: "live-dot" })) : null),
      meta.error ? h("p", { class: "neg", id: "run-error" }, "Error: " + meta.error) : null,
      running ? operator(h("button", { type: "button", class: "danger", id: "stop-run", onclick: async () => {
        if (!(await confirmBox("Stop this paper run?", "Open orders are cancelled, the journal flushed and the folder sealed."))) return;
        try { await api("/runs/" + meta.run_id + "/stop", { method: "POST", body: {} }); banner("Stop requested.", true); }
        catch (e) { banner("Not stopped: " + e.message); }
      } }, "Stop run")) : null);
    put(view(), head, metricsGrid(metrics, meta.currency),
      h("h2", {}, "Price and trades"), h("div", { class: "card" }, priceEl, priceNote),
      h("h2", {}, "Equity"), h("div", { class: "card" }, eqEl, equityNote),
      h("h2", {}, "Drawdown (%)"), h("div", { class: "card" }, ddEl),
      h("h2", {}, "Details"),
      h("div", { class: "card" }, tabs([
        ["Fills", () => pagedArtifact("/runs/" + meta.run_id + "/fills", 100)],
        ["Orders", () => pagedArtifact("/runs/" + meta.run_id + "/orders", 100)],
        ["Trades", () => pagedArtifact("/runs/" + meta.run_id + "/trades", 100)],
        ["Journal", () => journalView(meta.run_id)],
        ["Metrics", () => h("pre", {}, JSON.stringify(metrics, null, 2))],
      ])));
    const eq = keep(TC.lineChart(eqEl, [], { height: 240 }));
    const dd = keep(TC.lineChart(ddEl, [], { height: 140, area: true }));
    const here = current();
    if (!running) {
      chartP.then((chart) => {
        if (!here()) return;
        const p = keep(TC.priceChart(priceEl, chart, null));
        priceNote.textContent = p.symbol ? p.symbol + " · " + chart.instruments[0].bars_per_candle + " bar(s) per candle · " + chart.fills.length + " of " + chart.fills_total + " fills marked" : "no price data";
      }).catch((e) => { priceNote.textContent = e.message; });
      let curve;
      try { curve = await curveP; } catch (e) {
        // A run that failed before writing its curve still shows the rest.
        equityNote.textContent = e.message;
        return;
      }
      if (!here()) return;
      const pts = TC.increasing(curve.points.map((p) => ({ time: toSeconds(p.ts), value: Number(p.equity) })));
      eq.series.setData(pts); dd.series.setData(drawdownOf(pts));
      eq.chart.timeScale().fitContent(); dd.chart.timeScale().fitContent();
      equityNote.textContent = curve.rows + " rows" + (curve.downsampled ? ", " + curve.points.length + " points drawn (each bucket's first, lowest, highest, last)" : "");
    } else {
      // A running paper run: the curve and the fills tick in over /ws.
      const price = keep(TC.lineChart(priceEl, [], { height: 320, color: "#57606a" }));
      const pts = [], fills = [];
      priceNote.textContent = "live: fill prices as they happen";
      equityNote.textContent = "live";
      const dot = socket({ engine_run_id: meta.run_id }, (ev) => {
        if (ev.kind === "equity") {
          const t = toSeconds(ev.payload.ts);
          if (t !== null && (!pts.length || t > pts[pts.length - 1].time)) {
            const p = { time: t, value: Number(ev.payload.equity) };
            pts.push(p); eq.series.update(p);
            const d = drawdownOf(pts); dd.series.update(d[d.length - 1]);
          }
        } else if (ev.kind === "fill") {
          const t = toSeconds(ev.payload.ts);
          const px = Number(ev.payload.price || ev.payload.fill_price || ev.payload.last_px);
          if (t !== null && !Number.isNaN(px) && (!fills.length || t >= fills[fills.length - 1].time)) {
            if (fills.length && t === fills[fills.length - 1].time) fills[fills.length - 1] = { time: t, value: px }; else fills.push({ time: t, value: px });
            price.series.update(fills[fills.length - 1]);
          }
          const list = $("live-fills");
          if (list) list.prepend(h("li", { "data-fill": "1" }, fmtTime(ev.payload.wall_ts || ev.at) + " " + (ev.payload.side || "") + " " + (ev.payload.quantity || "") + " @ " + (px || "")));
        } else if (ev.kind === "run_finished") {
          banner("The run finished (" + ((ev.payload && ev.payload.status) || "") + "); reloading.", true);
          setTimeout(route, 800);
        }
      });
      $("live-dot").replaceWith(h("span", {}, dot, "live"));
      priceEl.after(h("ul", { id: "live-fills", class: "muted" }));
    }
  }

  function journalView(runId) {
    const box = h("div", {});
    let offset = 0;
    async function load() {
      const page = await api("/runs/" + runId + "/journal?limit=100&offset=" + offset);
      put(box, 
        table(["#", "event", "ts", "entry"], page.entries, (e, i) => h("tr", {},
          h("td", {}, offset + page.entries.indexOf(e) + 1), h("td", {}, e.event || e.kind || ""), h("td", {}, fmtTime(e.ts || e.wall_ts)),
          h("td", { class: "wrap" }, JSON.stringify(e)))),
        h("div", { class: "row" },
          h("button", { type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - 100); load(); } }, "‹ Prev"),
          h("span", { class: "muted" }, page.total + " entries"),
          h("button", { type: "button", disabled: !page.next_offset, onclick: () => { offset = page.next_offset; load(); } }, "Next ›")));
    }
    load().catch((e) => put(box, h("p", { class: "muted" }, e.message)));
    return box;
  }

  async function comparePage(a, b) {
    const here = current();
    const [ra, rb] = await Promise.all([api("/runs/" + a), api("/runs/" + b)]);
    const [ca, cb] = await Promise.all([api("/runs/" + a + "/equity?max_points=2000"), api("/runs/" + b + "/equity?max_points=2000")]);
    if (!here()) return;
    const ma = ra.metrics || {}, mb = rb.metrics || {};
    const keys = [...new Set([...Object.keys(ma), ...Object.keys(mb)])];
    const el = chartBox(300);
    const name = (r) => (r.metadata || r).name || (r.metadata || r).run_id;
    put(view(), h("h1", {}, "Compare runs"),
      h("p", {}, h("a", { href: "#/runs/" + a }, name(ra)), "  vs  ", h("a", { href: "#/runs/" + b }, name(rb))),
      h("h2", {}, "Equity"), h("div", { class: "card" }, el, h("p", { class: "muted" }, "blue: " + name(ra) + " · orange: " + name(rb))),
      h("h2", {}, "Metrics"),
      table(["metric", name(ra), name(rb)], keys, (k) => h("tr", {}, h("td", {}, k), h("td", {}, fmtNum(ma[k], 4)), h("td", {}, fmtNum(mb[k], 4)))));
    const c = keep(TC.lineChart(el, TC.increasing(ca.points.map((p) => ({ time: toSeconds(p.ts), value: Number(p.equity) }))), { height: 300 }));
    const s2 = c.chart.addSeries(window.LightweightCharts.LineSeries, { color: "#bf8700", lineWidth: 2 });
    s2.setData(TC.increasing(cb.points.map((p) => ({ time: toSeconds(p.ts), value: Number(p.equity) }))));
    c.chart.timeScale().fitContent();
  }

  // ---------- pages: simulation jobs ----------
  async function jobsPage() {
    const page = await api("/simulate/jobs?limit=100");
    let current = null;
    try { current = await api("/simulate/current"); } catch (_) { }
    put(view(), h("h1", {}, "Simulation jobs"),
      current ? h("p", {}, "Running now: ", h("a", { href: "#/jobs/" + current.job_id }, current.job_id), " ", progressText(current.progress)) : null,
      table(["job", "status", "models", "dates", "created", "finished"], page.jobs, (j) => h("tr", {},
        h("td", {}, h("a", { href: "#/jobs/" + j.job_id }, j.job_id.slice(0, 13))), h("td", {}, pill(j.status)),
        h("td", {}, (j.models || []).join(", ")), h("td", {}, (j.date_range || []).join(" → ")),
        h("td", {}, fmtTime(j.created_at)), h("td", {}, fmtTime(j.finished_at)))));
  }

  function progressText(p) {
    if (!p) return "";
    return p.completed + " / " + p.total_model_days + " model-days done" + (p.failed ? ", " + p.failed + " failed" : "") + (p.cancelled ? ", " + p.cancelled + " cancelled" : "") + (p.running ? ", " + p.running + " running" : "");
  }

  async function jobPage(id) {
    const status = await api("/simulate/status/" + encodeURIComponent(id));
    const progress = h("div", { id: "job-progress" });
    const board = h("div", {});
    const chartEl = chartBox(280);
    const days = h("div", {});
    const detail = h("div", { id: "model-day" });
    put(view(), h("h1", {}, "Simulation ", h("code", {}, status.job_id)),
      progress, h("h2", {}, "Leaderboard"), board,
      h("h2", {}, "Portfolio value per model"), h("div", { class: "card" }, chartEl),
      h("h2", {}, "Model-days"), days, detail);
    const chart = keep(TC.lineChart(chartEl, [], { height: 280 }));
    const series = {};
    const colors = ["#0969da", "#bf8700", "#1a7f37", "#8250df", "#cf222e", "#57606a", "#0550ae", "#953800"];
    const here = current();
    // The model-days table shows one page of the status answer's details.
    const DAYS = 100;
    let daysOffset = 0;
    async function refresh() {
      const s = await api("/simulate/status/" + encodeURIComponent(id) + "?details_limit=" + DAYS + "&details_offset=" + daysOffset);
      if (!here()) return s.status;
      const p = s.progress, pct = p.total_model_days ? Math.round(100 * (p.completed + p.failed + (p.refused || 0) + (p.cancelled || 0)) / p.total_model_days) : 0;
      put(progress, h("p", {}, pill(s.status), " ", progressText(p), " ", h("progress", { max: 100, value: pct }), " " + pct + " %"),
        operator(jobControls(s.status)));
      try {
        const lb = await api("/results/leaderboard?job_id=" + encodeURIComponent(id));
        put(board, table(["#", "model", "final value", "return", "sharpe", "max dd", "trades", "tool calls", "days"], lb.models, (m) => h("tr", {},
          h("td", {}, m.rank), h("td", {}, m.model), h("td", {}, m.final_value || "–"), h("td", {}, m.total_return || "–"), h("td", {}, fmtNum(m.sharpe, 3)),
          h("td", {}, m.max_drawdown || "–"), h("td", {}, m.trades), h("td", {}, m.tool_calls), h("td", {}, m.completed_days + (m.failed_days ? " (+" + m.failed_days + " failed)" : "")))));
      } catch (e) { put(board, h("p", { class: "muted" }, e.message)); }
      // Every model-day's value, page by page.
      const rows = [];
      for (let offset = 0; offset !== null && rows.length < 20000;) {
        const page = await api("/results?job_id=" + encodeURIComponent(id) + "&limit=1000&offset=" + offset);
        rows.push(...page.results); offset = page.next_offset === null || page.next_offset === undefined ? null : page.next_offset;
      }
      if (!here()) return s.status;
      const byModel = {};
      for (const r of rows) (byModel[r.model] = byModel[r.model] || []).push({ time: r.date, value: Number(r.portfolio_value) });
      Object.keys(byModel).sort().forEach((m, i) => {
        if (!series[m]) series[m] = chart.chart.addSeries(window.LightweightCharts.LineSeries, { color: colors[i % colors.length], lineWidth: 2, title: m });
        series[m].setData(byModel[m].sort((a, b) => (a.time < b.time ? -1 : 1)));
      });
      chart.chart.timeScale().fitContent();
      const turn = (offset) => { daysOffset = offset; refresh(); };
      put(days, table(["model", "date", "status", "value", "steps", "tool calls", "ms", ""], s.details, (d) => h("tr", {},
        h("td", {}, d.model), h("td", {}, d.date), h("td", {}, pill(d.status)), h("td", {}, d.portfolio_value || "–"), h("td", {}, fmtNum(d.steps, 0)),
        h("td", {}, fmtNum(d.tool_calls, 0)), h("td", {}, fmtNum(d.duration_ms, 0)),
        h("td", {}, d.status === "completed" ? h("button", { type: "button", onclick: () => modelDay(id, d.model, d.date) }, "Reasoning") : ""))),
        h("div", { class: "row" },
          h("button", { type: "button", disabled: daysOffset === 0, onclick: () => turn(Math.max(0, daysOffset - DAYS)) }, "‹ Prev"),
          h("span", { class: "muted" }, s.details_total ? (daysOffset + 1) + "–" + (daysOffset + s.details.length) + " of " + s.details_total : "0 model-days"),
          h("button", { type: "button", disabled: !s.details_next_offset, onclick: () => turn(s.details_next_offset) }, "Next ›")));
      return s.status;
    }
    // Pause / Resume / Cancel, as the job's status allows (the API answers 409 otherwise).
    function jobControls(st) {
      const act = (action, done) => async () => {
        if (action === "cancel" && !(await confirmBox("Cancel this job?", "Model-days not started are cancelled; those running finish. Triggering the same config again runs the cancelled days."))) return;
        try {
          await api("/simulate/" + encodeURIComponent(id) + "/" + action, { method: "POST" });
          banner("Job " + done + ".", true);
        } catch (e) { banner("Not " + done + ": " + e.message); }
        refresh().catch(() => { });
      };
      const unfinished = ["pending", "running", "interrupted", "paused"].includes(st);
      if (!unfinished) return null;
      return h("div", { class: "row", id: "job-controls" },
        st === "paused"
          ? h("button", { type: "button", class: "ok", id: "job-resume", onclick: act("resume", "resumed") }, "Resume")
          : h("button", { type: "button", id: "job-pause", onclick: act("pause", "paused") }, "Pause"),
        h("button", { type: "button", class: "danger", id: "job-cancel", onclick: act("cancel", "cancelled") }, "Cancel"));
    }
    async function modelDay(job, model, date) {
      const r = await api("/results?job_id=" + encodeURIComponent(job) + "&model=" + encodeURIComponent(model) + "&date=" + date + "&detail=full");
      const item = r.results[0] || {};
      const full = item.full || {};
      const messages = Array.isArray(full.reasoning) ? full.reasoning : [];
      const call = (tc) => {
        const f = tc.function || tc;
        return h("div", { class: "tool-call" }, "→ ", h("code", {}, (f.name || "?") + "(" + (f.arguments || "") + ")"));
      };
      const transcript = messages.map((m) => h("div", { class: "msg " + (m.role || "") },
        h("div", { class: "muted" }, (m.role || "") + (m.step !== undefined ? " · step " + m.step : "") + (m.name ? " · " + m.name : "")),
        m.content ? h("pre", {}, typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2)) : null,
        (m.tool_calls || []).map(call)));
      put(detail, h("h2", {}, model + " · " + date),
        h("div", { class: "card" },
          h("p", { class: "muted" }, "Portfolio value " + (item.portfolio_value || "–") + " · cash " + (item.cash || "–") + " · tool calls " + (full.tool_calls === undefined ? "–" : typeof full.tool_calls === "number" ? full.tool_calls : (full.tool_calls || []).length)),
          h("h3", {}, "Reasoning and tool calls"),
          messages.length ? h("div", { class: "transcript reasoning" }, transcript) : h("pre", { class: "reasoning" }, JSON.stringify(full.reasoning || null, null, 2)),
          h("h3", {}, "Trades"),
          table(["action", "symbol", "quantity", "price", "fee", "cash after"], Array.isArray(full.trades) ? full.trades : [], (t) => h("tr", {},
            h("td", {}, t.action || t.side || ""), h("td", {}, t.symbol || ""), h("td", {}, t.quantity || ""), h("td", {}, t.price || ""), h("td", {}, t.fee || ""), h("td", {}, t.cash_after || "")))));
      detail.scrollIntoView();
    }
    await refresh();
    let pending = false;
    const dot = socket({ job_id: id }, () => {
      if (pending) return; pending = true;
      setTimeout(() => { pending = false; refresh().catch(() => { }); }, 500);
    });
    progress.before(h("p", { class: "muted" }, dot, "live"));
  }

  // ---------- pages: workflows ----------
  async function workflowsPage() {
    const [wfs, runs] = await Promise.all([api("/workflows"), api("/workflow-runs?limit=50")]);
    put(view(), h("h1", {}, "Workflows"),
      table(["workflow", "version", "updated"], wfs.workflows || [], (w) => h("tr", {},
        h("td", {}, h("a", { href: "#/workflows/" + w.id }, w.name || w.id)), h("td", {}, w.version || w.latest_version || ""), h("td", {}, fmtTime(w.updated_at || w.created_at)))),
      h("h2", {}, "Recent runs"),
      table(["run", "workflow", "status", "IR", "created", "finished"], runs.runs || [], (r) => h("tr", {},
        h("td", {}, h("a", { href: "#/wruns/" + r.run_id }, r.run_id.slice(0, 13))), h("td", {}, r.workflow_id.slice(0, 13) + " v" + r.workflow_version),
        h("td", {}, pill(r.status)), h("td", {}, r.ir_version), h("td", {}, fmtTime(r.created_at)), h("td", {}, fmtTime(r.finished_at)))));
  }

  async function workflowPage(id) {
    const wf = await api("/workflows/" + encodeURIComponent(id));
    const inputs = h("textarea", { id: "wf-inputs" }, "{}");
    put(view(), h("h1", {}, wf.name || id),
      h("p", { class: "muted" }, "Workflow ", h("code", {}, wf.id || id), " · version ", String(wf.version || wf.latest_version || "")),
      operator(h("div", { class: "card" }, h("h2", {}, "Start a run"), h("p", { class: "muted" }, "Inputs (JSON object):"), inputs,
        h("div", { class: "row" }, h("button", { type: "button", class: "primary", id: "wf-start", onclick: async () => {
          let parsed;
          try { parsed = JSON.parse(inputs.value || "{}"); } catch (e) { banner("Inputs are not JSON: " + e.message); return; }
          try { const r = await api("/workflows/" + encodeURIComponent(id) + "/runs", { method: "POST", body: { inputs: parsed } }); location.hash = "#/wruns/" + r.run_id; }
          catch (e) { banner("Not started: " + e.message); }
        } }, "Start run")))),
      h("h2", {}, "Versions"),
      table(["version", "IR hash", "definition hash", "created"], wf.versions || [], (v) => h("tr", {},
        h("td", {}, v.version), h("td", {}, h("code", {}, String(v.ir_hash || "").slice(0, 16))),
        h("td", {}, h("code", {}, String(v.definition_hash || "").slice(0, 16))), h("td", {}, fmtTime(v.created_at)))),
      h("h2", {}, "Definition (version " + (wf.version || "") + ")"), h("pre", {}, JSON.stringify(wf.definition || wf, null, 2)));
  }

  function dagSvg(nodes, onPick) {
    const live = nodes.filter((n) => !n.removed);
    const depth = {};
    const byId = Object.fromEntries(live.map((n) => [n.id, n]));
    const d = (id, seen) => {
      if (depth[id] !== undefined) return depth[id];
      if (seen.has(id)) return 0;
      seen.add(id);
      const n = byId[id];
      const v = n && n.needs && n.needs.length ? 1 + Math.max(...n.needs.filter((x) => byId[x]).map((x) => d(x, seen)), -1) : 0;
      depth[id] = v; return v;
    };
    live.forEach((n) => d(n.id, new Set()));
    const cols = {};
    live.forEach((n) => (cols[depth[n.id]] = cols[depth[n.id]] || []).push(n));
    const W = 150, H = 44, GX = 60, GY = 18;
    const pos = {};
    let maxRows = 1;
    Object.entries(cols).forEach(([c, ns]) => { maxRows = Math.max(maxRows, ns.length); ns.forEach((n, r) => (pos[n.id] = { x: 10 + c * (W + GX), y: 10 + r * (H + GY) })); });
    const width = 20 + (Object.keys(cols).length) * (W + GX), height = 20 + maxRows * (H + GY);
    const NS = "http://www.w3.org/2000/svg";
    const s = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; };
    const svg = s("svg", { width, height, viewBox: "0 0 " + width + " " + height, id: "dag" });
    live.forEach((n) => (n.needs || []).forEach((p) => {
      if (!pos[p]) return;
      const a = pos[p], b = pos[n.id];
      svg.appendChild(s("path", { d: "M" + (a.x + W) + "," + (a.y + H / 2) + " C" + (a.x + W + GX / 2) + "," + (a.y + H / 2) + " " + (b.x - GX / 2) + "," + (b.y + H / 2) + " " + b.x + "," + (b.y + H / 2) }));
    }));
    live.forEach((n) => {
      const g = s("g", { class: "node " + n.status, transform: "translate(" + pos[n.id].x + "," + pos[n.id].y + ")", "data-node": n.id, "data-status": n.status });
      g.appendChild(s("rect", { width: W, height: H, rx: 6 }));
      g.appendChild(s("text", { x: 8, y: 18 }, n.id.length > 18 ? n.id.slice(0, 17) + "…" : n.id));
      g.appendChild(s("text", { x: 8, y: 35, fill: "#57606a" }, (n.type || "") + " · " + n.status));
      g.addEventListener("click", () => onPick(n));
      svg.appendChild(g);
    });
    return svg;
  }

  async function workflowRunPage(id) {
    const dag = h("div", { class: "dag card" });
    const info = h("div", {});
    const nodeBox = h("div", { id: "node-output" });
    const patches = h("div", {});
    put(view(), h("h1", {}, "Workflow run ", h("code", {}, id)), info, h("h2", {}, "Graph"), dag, nodeBox, h("h2", {}, "Patches"), patches);
    async function pick(n) {
      let out = null;
      if (n.output) {
        try { const blob = await api("/blobs/" + n.output); out = blob && blob.content !== undefined ? blob.content : blob; }
        catch (e) { out = e.message; }
      }
      put(nodeBox, h("h2", {}, "Node " + n.id), h("p", {}, pill(n.status), " ", n.type || "", " · attempts " + n.attempts, n.error ? h("span", { class: "neg" }, " · " + n.error) : null),
        h("pre", { class: "node-output" }, out === null ? "(no output yet)" : JSON.stringify(out, null, 2)));
    }
    // Pause (no new node starts; running ones finish) or Resume, as the run's status allows
    // (the API answers 409 otherwise).
    function runControl(st) {
      const act = (action, done) => async () => {
        try {
          await api("/workflow-runs/" + encodeURIComponent(id) + "/" + action, { method: "POST" });
          banner("Run " + done + ".", true);
        } catch (e) { banner("Not " + done + ": " + e.message); }
        refresh().catch(() => { });
      };
      if (st === "queued") return null; // held back by a concurrency limit: cancel only
      return st === "paused"
        ? h("button", { type: "button", class: "ok", id: "resume-run", onclick: act("resume", "resumed") }, "Resume run")
        : h("button", { type: "button", id: "pause-run", onclick: act("pause", "paused") }, "Pause run");
    }
    async function refresh() {
      const r = await api("/workflow-runs/" + encodeURIComponent(id));
      const terminal = ["completed", "failed", "cancelled"].includes(r.status);
      put(info, h("p", {}, pill(r.status), " ", h("a", { href: "#/workflows/" + r.workflow_id }, r.workflow_name || r.workflow_id), " v" + r.workflow_version,
        (r.priority && r.priority !== "normal" ? " · " + r.priority + " priority" : "") + " · IR version " + r.ir_version + " · created " + fmtTime(r.created_at) + (r.finished_at ? " · finished " + fmtTime(r.finished_at) : ""),
        r.error ? h("span", { class: "neg" }, " · " + r.error) : null),
        h("details", {}, h("summary", {}, "Inputs"), h("pre", {}, JSON.stringify(r.inputs, null, 2))),
        (r.approvals || []).filter((a) => a.status === "pending").length ? h("p", {}, "Waiting for approval: ", h("a", { href: "#/approvals" }, "open the inbox")) : null,
        terminal ? null : operator(h("span", { class: "row", id: "run-controls" }, runControl(r.status), h("button", { type: "button", class: "danger", id: "cancel-run", onclick: async () => {
          const reason = await confirmBox("Cancel this run?", "Running nodes are stopped and nothing new starts.", "reason");
          if (reason === null) return;
          try { await api("/workflow-runs/" + encodeURIComponent(id) + "/cancel", { method: "POST", body: { reason: reason } }); refresh(); }
          catch (e) { banner("Not cancelled: " + e.message); }
        } }, "Cancel run"))));
      put(dag, dagSvg(r.nodes || [], pick));
      put(patches, (r.patches || []).length ? h("pre", {}, JSON.stringify(r.patches, null, 2)) : h("p", { class: "muted" }, "No patches; IR version " + r.ir_version + "."));
    }
    await refresh();
    let pending = false;
    const dot = socket({ run_id: id }, () => {
      if (pending) return; pending = true;
      setTimeout(() => { pending = false; refresh().catch(() => { }); }, 150);
    });
    info.before(h("p", { class: "muted" }, dot, "live"));
  }

  // ---------- pages: approvals ----------
  async function approvalsPage() {
    const list = h("div", { id: "approvals" });
    const decidedBox = h("div", { id: "decided" });
    put(view(), h("h1", {}, "Approvals"), list, h("h2", {}, "Decided"), decidedBox);
    const here = current();
    async function load() {
      const pending = await api("/approvals?status=pending&limit=100");
      if (!here()) return;
      const items = pending.approvals || pending.items || [];
      updateBadge(items.length);
      put(list, items.length ? h("div", {}, items.map(card)) : h("p", { class: "muted" }, "Nothing waits for a decision."));
      const decided = await api("/approvals?limit=50");
      put(decidedBox, table(["approval", "run", "node", "status", "by", "comment", "decided"], (decided.approvals || decided.items || []).filter((a) => a.status !== "pending"), (a) => h("tr", {},
        h("td", {}, a.id.slice(0, 13)), h("td", {}, h("a", { href: "#/wruns/" + a.run_id }, a.run_id.slice(0, 13))), h("td", {}, a.node_id), h("td", {}, pill(a.status)),
        h("td", {}, a.decided_by || ""), h("td", {}, a.comment || ""), h("td", {}, fmtTime(a.decided_at)))));
    }
    function card(a) {
      const comment = h("input", { placeholder: "comment (optional)", class: "comment" });
      const decide = async (decision) => {
        try { await api("/approvals/" + a.id + "/decide", { method: "POST", body: { decision: decision, comment: comment.value || undefined } }); banner("Decided: " + decision + ". The run resumes.", true); load(); }
        catch (e) { banner("Not decided: " + e.message); }
      };
      return h("div", { class: "card approval", "data-approval": a.id },
        h("p", {}, h("b", {}, a.prompt)),
        h("p", { class: "muted" }, "Run ", h("a", { href: "#/wruns/" + a.run_id }, a.run_id.slice(0, 13)), " · node " + a.node_id + " · expires " + fmtTime(a.expires_at) + " (then " + a.default_decision + ")" + (a.approvers ? " · approvers: " + a.approvers.join(", ") : "")),
        can("operator") ? h("div", { class: "row" }, comment,
          h("button", { type: "button", class: "ok", "data-decide": "approve", onclick: () => decide("approve") }, "Approve"),
          h("button", { type: "button", class: "danger", "data-decide": "reject", onclick: () => decide("reject") }, "Reject")) : h("p", { class: "muted" }, "Your key (" + me.role + ") can see but not decide."));
    }
    await load();
    every(3000, () => load().catch(() => { }));
  }

  async function updateBadge(n) {
    const b = $("approvals-count");
    if (n === undefined) {
      try { const p = await api("/approvals?status=pending&limit=100"); n = (p.approvals || p.items || []).length; } catch (_) { return; }
    }
    b.textContent = n; b.hidden = !n;
  }

  // ---------- pages: operations ----------
  async function opsPage() {
    const health = h("div", {}), history = chartBox(200), ks = h("div", { id: "killswitch" }), drills = h("div", {}), recs = h("div", {}), procs = h("div", {}), metrics = h("div", {});
    put(view(), h("h1", {}, "Operations"),
      h("h2", {}, "Health"), health, h("div", { class: "card" }, history, h("p", { class: "muted" }, "rm_meta over the monitor's checks")),
      h("h2", {}, "Kill switch"), ks,
      h("h2", {}, "Drills"), drills, h("h2", {}, "Reconciliations"), recs,
      h("h2", {}, "Processes"), procs, h("h2", {}, "Metrics"), metrics);
    const hist = keep(TC.lineChart(history, [], { height: 200 }));
    const here = current();
    async function loadHealth() {
      try {
        const m = await api("/health/meta");
        const sensors = m.sensors || {};
        put(health, h("p", {}, "rm_meta ", h("b", { id: "rm-meta" }, fmtNum(m.rm_meta, 3)), " ", pill(m.status), " · checked " + fmtTime(m.checked_at)),
          table(["sensor", "value"], Object.entries(sensors), ([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, typeof v === "object" ? JSON.stringify(v) : fmtNum(v, 3)))));
      } catch (e) { put(health, h("p", { class: "muted" }, "Health monitor: " + e.message)); }
      const hh = await api("/health/history?limit=2000");
      if (!here()) return;
      hist.series.setData(TC.increasing(hh.entries.map((e) => ({ time: toSeconds(e.checked_at), value: e.rm_meta }))));
      hist.chart.timeScale().fitContent();
    }
    async function loadKill() {
      const s = await api("/killswitch");
      const engaged = !!(s.global && s.global.engaged);
      const scoped = [...Object.values(s.runs || {}), ...Object.values(s.jobs || {})].filter((x) => x.engaged);
      const reason = h("input", { id: "ks-reason", placeholder: "reason" });
      put(ks, h("div", { class: "card" },
        h("p", {}, "Global: ", h("span", { id: "ks-state" }, pill(engaged ? "engaged" : "released")), engaged && s.global.reason ? " — " + s.global.reason : "",
          engaged && s.global.engaged_by ? " (by " + s.global.engaged_by + ")" : ""),
        scoped.length ? h("pre", {}, JSON.stringify(scoped, null, 2)) : null,
        operator(h("div", { class: "row" }, engaged ? null : reason,
          engaged
            ? h("button", { type: "button", class: "ok", id: "ks-release", onclick: async () => {
              if (!(await confirmBox("Release the kill switch?", "Orders are accepted again in every process on this data dir."))) return;
              try { await api("/killswitch/release", { method: "POST", body: { reason: "released from the dashboard" } }); loadKill(); } catch (e) { banner("Not released: " + e.message); }
            } }, "Release")
            : h("button", { type: "button", class: "danger", id: "ks-engage", onclick: async () => {
              if (!reason.value.trim()) { banner("Say why trading stops (reason).", true); reason.focus(); return; }
              if (!(await confirmBox("Engage the kill switch?", "No new order is accepted by any run or job on this data dir once it has returned."))) return;
              try { await api("/killswitch/engage", { method: "POST", body: { reason: reason.value } }); banner("Kill switch engaged.", true); loadKill(); } catch (e) { banner("Not engaged: " + e.message); }
            } }, "Engage kill switch")))));
    }
    async function loadRest() {
      const d = await api("/ops/drills");
      put(drills, table(["drill", "passed", "finished", "steps"], d.drills, (x) => h("tr", {},
        h("td", {}, x.name), h("td", {}, pill(x.report.passed === false ? "failed" : x.report.passed ? "passed" : String(x.report.outcome || "–"))),
        h("td", {}, fmtTime(x.report.finished_at || x.report.ran_at)), h("td", {}, (x.report.steps || []).length))));
      const r = await api("/ops/reconciliations?limit=50");
      put(recs, table(["subject", "passed", "checked", "failed checks"], r.results, (x) => h("tr", {},
        h("td", {}, x.run_id ? h("a", { href: "#/runs/" + x.run_id }, "run " + x.run_id.slice(0, 13)) : "job " + String(x.job_id || "").slice(0, 13)),
        h("td", {}, pill(x.passed ? "passed" : "failed")), h("td", {}, fmtTime(x.checked_at)),
        h("td", {}, (x.checks || []).filter((c) => !c.passed).map((c) => c.name).join(", ")))));
      try {
        const p = await api("/runtime/processes");
        put(procs, h("pre", {}, JSON.stringify(p, null, 2)));
      } catch (e) {
        try { put(procs, h("pre", {}, JSON.stringify(await api("/cluster"), null, 2))); } catch (_) { put(procs, h("p", { class: "muted" }, e.message)); }
      }
      const text = await apiText("/metrics");
      const series = text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => {
        const i = l.lastIndexOf(" ");
        const key = l.slice(0, i), value = Number(l.slice(i + 1));
        const name = key.replace(/\{.*$/, "");
        const status = (key.match(/status="(\d)/) || [])[1];
        return { key, name, value, status };
      }).filter((x) => x.name.startsWith("tradeloom_"));
      const sum = (f) => series.filter(f).reduce((a, x) => a + x.value, 0);
      const requests = sum((x) => x.name === "tradeloom_http_requests_total");
      const byClass = (c) => sum((x) => x.name === "tradeloom_http_requests_total" && x.status === c);
      const latency = sum((x) => x.name === "tradeloom_http_request_duration_seconds_sum") / Math.max(1, sum((x) => x.name === "tradeloom_http_request_duration_seconds_count"));
      const other = series.filter((x) => !x.name.startsWith("tradeloom_http_") && !x.name.endsWith("_bucket"));
      put(metrics,
        h("div", { class: "grid" },
          ...[["HTTP requests", requests], ["2xx", byClass("2")], ["4xx", byClass("4")], ["5xx", byClass("5")], ["mean latency", (latency * 1000).toFixed(2) + " ms"]]
            .map(([k, v]) => h("div", { class: "stat" }, h("span", {}, k), h("b", {}, String(v))))),
        h("details", {}, h("summary", {}, other.length + " other series (jobs, runs, health, connectivity …)"),
          table(["series", "value"], other, (x) => h("tr", {}, h("td", { class: "wrap" }, x.key), h("td", {}, String(x.value))))));
    }
    await Promise.all([loadHealth().catch((e) => banner(e.message)), loadKill(), loadRest().catch((e) => banner(e.message))]);
    every(5000, () => { loadHealth().catch(() => { }); loadKill().catch(() => { }); });
  }

  // ---------- router ----------
  const routes = [
    [/^#\/runs\/?$/, "runs", runsPage],
    [/^#\/runs\/([^/]+)$/, "runs", runPage],
    [/^#\/compare\/([^/]+)\/([^/]+)$/, "runs", comparePage],
    [/^#\/jobs\/?$/, "jobs", jobsPage],
    [/^#\/jobs\/([^/]+)$/, "jobs", jobPage],
    [/^#\/workflows\/?$/, "workflows", workflowsPage],
    [/^#\/workflows\/([^/]+)$/, "workflows", workflowPage],
    [/^#\/wruns\/([^/]+)$/, "workflows", workflowRunPage],
    [/^#\/approvals\/?$/, "approvals", approvalsPage],
    [/^#\/ops\/?$/, "ops", opsPage],
  ];

  async function route() {
    generation += 1;
    cleanup.forEach((f) => { try { f(); } catch (_) { } });
    cleanup = [];
    banner(null);
    const hash = location.hash || "#/runs";
    const match = routes.map(([re, nav, page]) => [hash.match(re), nav, page]).find((x) => x[0]);
    if (!match) { location.hash = "#/runs"; return; }
    document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === match[1]));
    put(view(), h("p", { class: "muted" }, "Loading…"));
    const here = current();
    try {
      await match[2](...match[0].slice(1).map(decodeURIComponent));
      if (!here()) return;
      document.body.dataset.page = match[1];
      document.body.dataset.ready = hash;
    } catch (e) {
      if (!here()) return;
      put(view(), h("h1", {}, "Not available"), h("p", { class: "neg", id: "page-error" }, e.message));
      document.body.dataset.ready = hash;
    }
  }

  window.addEventListener("hashchange", route);
  (async function start() {
    if (await whoami()) { route(); updateBadge(); setInterval(() => updateBadge(), 10000); }
  })();
})();
