/*
 * A saved run's page: fetch the run's JSON export, draw the whole run on uPlot charts
 * with a labelled line at each of the learner's actions, and show the frame the timeline's
 * slider is at (its counters, workers, store), with a dashed line there on every chart.
 * Read-only: nothing here talks to a lab. No inline script: the page's CSP is script-src 'self'.
 */
(function () {
  "use strict";

  var CHART_HEIGHT = 200;
  var DASHED = [6, 4];
  var SERIES = {
    throughput: [{ key: "ok", color: "--pg-ok", fill: "--pg-ok-fill" }],
    failures: [
      { key: "failed", color: "--pg-bad" },
      { key: "lost", color: "--pg-lost", dash: DASHED },
    ],
    latency: [
      { key: "p50", color: "--pg-p50" },
      { key: "p99", color: "--pg-p99", dash: DASHED },
    ],
  };
  // How each counter is written (the server renders the same).
  var DECIMALS = { rps: 1, latency_p50_ms: 1, latency_p99_ms: 1 };
  var run = null; // the export: {frames, points, marks, ...}
  var current = 0; // the frame shown
  var charts = [];

  function cssVar(el, name, fallback) {
    var value = getComputedStyle(el).getPropertyValue(name).trim();
    return value || fallback;
  }

  function seconds(t) {
    return Math.round(t) + " s";
  }

  // -- charts ------------------------------------------------------------------------

  function line(u, ctx, t, dash) {
    var x = Math.round(u.valToPos(t, "x", true));
    ctx.setLineDash(dash);
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
    return x;
  }

  // The actions as labelled lines, and the slider's time as a dashed one.
  function markPlugin(el) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx;
          var ratio = window.devicePixelRatio || 1;
          ctx.save();
          ctx.strokeStyle = cssVar(el, "--pg-text", "#1c222b");
          ctx.fillStyle = ctx.strokeStyle;
          ctx.lineWidth = ratio;
          ctx.font = Math.round(12 * ratio) + "px sans-serif";
          run.marks.forEach(function (mark) {
            var x = line(u, ctx, mark.t, []);
            ctx.fillText(mark.label, x + 4, u.bbox.top + 14 * ratio);
          });
          var frame = run.frames[current];
          if (frame) {
            ctx.strokeStyle = cssVar(el, "--pg-focus", "#2563eb");
            ctx.lineWidth = 2 * ratio;
            line(u, ctx, frame.t, DASHED);
          }
          ctx.restore();
          el.setAttribute("data-marks", String(run.marks.length));
        }],
      },
    };
  }

  function makeChart(el, defs) {
    var muted = cssVar(el, "--pg-muted", "#6b7280");
    var grid = cssVar(el, "--pg-grid", "#e5e7eb");
    var axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { show: false } };
    var xs = run.points.map(function (p) { return p.t; });
    var last = run.frames.length ? run.frames[run.frames.length - 1].t : 0;
    var opts = {
      width: Math.max(200, el.clientWidth),
      height: CHART_HEIGHT,
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: {
        x: { time: false, range: [run.frames.length ? run.frames[0].t : 0, Math.max(1, last)] },
        y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.15)]; } },
      },
      axes: [
        Object.assign({ values: function (u, vs) { return vs.map(seconds); }, space: 50 }, axis),
        Object.assign({ size: 44 }, axis),
      ],
      series: [{}].concat(defs.map(function (d) {
        return {
          stroke: cssVar(el, d.color, "#2563eb"),
          fill: d.fill ? cssVar(el, d.fill, undefined) : undefined,
          width: 2,
          dash: d.dash,
          points: { show: false },
        };
      })),
      plugins: [markPlugin(el)],
    };
    var data = [xs].concat(defs.map(function (d) {
      return run.points.map(function (p) { return p[d.key] == null ? null : p[d.key]; });
    }));
    var chart = new uPlot(opts, data, el);
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        chart.setSize({ width: Math.max(200, el.clientWidth), height: CHART_HEIGHT });
      }).observe(el);
    }
    return chart;
  }

  function setupCharts(root) {
    charts.forEach(function (chart) { chart.destroy(); });
    charts = [];
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var defs = SERIES[el.getAttribute("data-chart")];
      if (defs) charts.push(makeChart(el, defs));
    });
  }

  // -- the frame at the slider ---------------------------------------------------------

  function workerItem(w) {
    var li = document.createElement("li");
    li.setAttribute("data-worker", w.name);
    li.setAttribute("data-status", w.status);
    var name = document.createElement("strong");
    name.textContent = w.name;
    var badge = document.createElement("span");
    badge.className = "badge badge--" + w.status;
    badge.textContent = w.status;
    li.append(name, " ", badge, " · " + w.sessions + " sessions · " + w.rps.toFixed(1) + " req/s");
    return li;
  }

  function showFrame(root, index) {
    var frame = run.frames[index];
    if (!frame) return;
    current = index;
    var end = run.frames[run.frames.length - 1].t;
    root.querySelector("#run-at").textContent = seconds(frame.t) + " of " + seconds(end);
    root.querySelector("#run-scrub").setAttribute("aria-valuetext", seconds(frame.t));
    root.setAttribute("data-frame", String(index));
    root.querySelectorAll("#run-metrics [data-metric]").forEach(function (dd) {
      var key = dd.getAttribute("data-metric");
      var value = Number(frame.metrics[key] || 0);
      dd.textContent = DECIMALS[key] ? value.toFixed(DECIMALS[key]) : String(value);
    });
    root.querySelector("#run-workers").replaceChildren.apply(
      root.querySelector("#run-workers"), frame.workers.map(workerItem)
    );
    var store = root.querySelector("#run-store");
    store.hidden = !frame.store;
    var status = store.querySelector("[data-store]");
    status.textContent = frame.store ? frame.store.status : "";
    status.setAttribute("data-status", frame.store ? frame.store.status : "");
    charts.forEach(function (chart) { chart.redraw(false, false); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("run");
    var scrub = document.getElementById("run-scrub");
    if (!root || !scrub) return;
    fetch(root.getAttribute("data-export"), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        run = data;
        current = Number(scrub.value);
        setupCharts(root);
        scrub.addEventListener("input", function () { showFrame(root, Number(scrub.value)); });
        showFrame(root, current);
        root.setAttribute("data-ready", "true");
      });
    document.addEventListener("course:themechange", function () {
      if (run) setupCharts(root);
    });
  });
})();
