// tradeloom charts: the price (candles + trade markers), equity and drawdown charts shared by
// report.html (inlined) and the dashboard (/ui/charts.js). Needs window.LightweightCharts
// (TradingView lightweight-charts v5, Apache-2.0, vendored in assets/vendor/).
(function () {
  "use strict";
  const LC = window.LightweightCharts;

  function base(el, height) {
    const chart = LC.createChart(el, {
      height: height,
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: "#1f2933", fontSize: 11 },
      grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
      rightPriceScale: { borderColor: "#d5dbe1" },
      timeScale: { borderColor: "#d5dbe1", timeVisible: true, secondsVisible: false },
      crosshair: { mode: 0 },
    });
    return chart;
  }

  // Keeps strictly increasing times (the library refuses equal or decreasing ones).
  function increasing(rows) {
    const out = [];
    let last = -Infinity;
    for (const r of rows) {
      if (r.time > last) {
        out.push(r);
        last = r.time;
      } else if (out.length && r.time === last) {
        out[out.length - 1] = r;
      }
    }
    return out;
  }

  // chart: the run's chart.json ({instruments: [{symbol, candles: [[t,o,h,l,c]]}], fills}).
  function priceChart(el, chart, symbol) {
    const inst = (chart.instruments || []).find((i) => !symbol || i.symbol === symbol) ||
      (chart.instruments || [])[0];
    const c = base(el, 320);
    if (!inst) return { chart: c, series: null };
    const series = c.addSeries(LC.CandlestickSeries, {
      upColor: "#1a7f37", downColor: "#cf222e", borderVisible: false,
      wickUpColor: "#1a7f37", wickDownColor: "#cf222e",
    });
    series.setData(increasing(inst.candles.map((k) => ({
      time: k[0], open: k[1], high: k[2], low: k[3], close: k[4],
    }))));
    const markers = (chart.fills || [])
      .filter((f) => f[1] === inst.symbol)
      .map((f) => ({
        time: candleTime(inst.candles, f[0]),
        position: f[2] === "BUY" ? "belowBar" : "aboveBar",
        color: f[2] === "BUY" ? "#0969da" : "#bf8700",
        shape: f[2] === "BUY" ? "arrowUp" : "arrowDown",
        text: (f[2] === "BUY" ? "B " : "S ") + f[3] + " @ " + f[4],
      }));
    markers.sort((a, b) => a.time - b.time);
    // Labels only where they can be read; arrows always.
    if (markers.length > 60) markers.forEach((m) => { m.text = ""; });
    if (LC.createSeriesMarkers) LC.createSeriesMarkers(series, markers);
    c.timeScale().fitContent();
    return { chart: c, series: series, symbol: inst.symbol };
  }

  // The time of the candle holding `t` (markers must sit on a candle's time).
  function candleTime(candles, t) {
    let lo = 0, hi = candles.length - 1, best = candles.length ? candles[0][0] : t;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (candles[mid][0] <= t) { best = candles[mid][0]; lo = mid + 1; } else { hi = mid - 1; }
    }
    return best;
  }

  // points: [{time, value}]
  function lineChart(el, points, opts) {
    const c = base(el, (opts && opts.height) || 240);
    const series = c.addSeries(opts && opts.area ? LC.AreaSeries : LC.LineSeries, opts && opts.area ? {
      lineColor: opts.color || "#cf222e", topColor: "rgba(207,34,46,0.05)",
      bottomColor: "rgba(207,34,46,0.35)", lineWidth: 1, invertFilledArea: true,
    } : { color: (opts && opts.color) || "#0969da", lineWidth: 2 });
    series.setData(increasing(points));
    c.timeScale().fitContent();
    return { chart: c, series: series };
  }

  window.TradeloomCharts = { priceChart: priceChart, lineChart: lineChart, increasing: increasing };
})();
