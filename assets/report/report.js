// report.html: draws the run's data (the JSON in #tl-data) with the shared charts.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("tl-data").textContent);
  const $ = (id) => document.getElementById(id);
  const text = (tag, s, cls) => { const e = document.createElement(tag); e.textContent = s; if (cls) e.className = cls; return e; };

  // Metrics: every field of metrics.json, in its order.
  const mt = $("metrics");
  for (const [k, v] of Object.entries(data.metrics || {})) {
    const tr = document.createElement("tr");
    tr.appendChild(text("th", k.replace(/_/g, " ")));
    tr.appendChild(text("td", v === null ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v)));
    mt.appendChild(tr);
  }

  const TC = window.TradeloomCharts;
  const price = TC.priceChart($("price"), data.chart, null);
  const fillsTotal = data.chart.fills_total || 0;
  $("price-note").textContent = price.symbol
    ? price.symbol + " · " + (data.chart.instruments[0].bars_per_candle) + " bar(s) per candle · " +
      Math.min(fillsTotal, data.chart.fills.length) + " of " + fillsTotal + " fills marked"
    : "no price data in this run folder";
  const eq = data.equity.map((p) => ({ time: Math.floor(p[0] / 1e9), value: p[1] }));
  const dd = data.equity.map((p) => ({ time: Math.floor(p[0] / 1e9), value: -p[2] }));
  const e = TC.lineChart($("equity"), eq, { height: 240 });
  const d = TC.lineChart($("drawdown"), dd, { height: 140, area: true });
  // The three charts scroll and zoom together.
  const charts = [price.chart, e.chart, d.chart];
  let syncing = false;
  for (const c of charts) {
    c.timeScale().subscribeVisibleTimeRangeChange((range) => {
      if (syncing || !range) return;
      syncing = true;
      for (const o of charts) if (o !== c) { try { o.timeScale().setVisibleRange(range); } catch (_) { } }
      syncing = false;
    });
  }

  // Trades: sortable by clicking a column.
  const cols = ["#", "symbol", "side", "qty", "entry", "entry price", "exit", "exit price", "gross pnl", "fees", "net pnl", "bars", "status"];
  const rows = data.trades.rows;
  const head = $("trades-head"), body = $("trades-body");
  let sortCol = 0, asc = true;
  cols.forEach((c, i) => {
    const th = text("th", c);
    th.addEventListener("click", () => { asc = sortCol === i ? !asc : true; sortCol = i; draw(); });
    head.appendChild(th);
  });
  function key(v) { const n = Number(v); return v !== "" && !Number.isNaN(n) ? n : v; }
  function draw() {
    const sorted = rows.slice().sort((a, b) => {
      const x = key(a[sortCol]), y = key(b[sortCol]);
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    body.replaceChildren(...sorted.map((r) => {
      const tr = document.createElement("tr");
      r.forEach((v, i) => {
        const td = text("td", v);
        if (i === 10 && v !== "") td.className = Number(v) < 0 ? "neg" : "pos";
        tr.appendChild(td);
      });
      return tr;
    }));
  }
  draw();
  $("trades-note").textContent = data.trades.total === rows.length
    ? data.trades.total + " trades (all in trades.csv)"
    : data.trades.total + " trades: the first and last " + rows.length + " listed, all in trades.csv";
})();
