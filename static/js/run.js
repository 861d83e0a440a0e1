/*
 * A saved run's page: fetch the run's JSON export, draw the whole run on uPlot charts
 * with a labelled line at each of the learner's actions, and show the frame the timeline's
 * slider is at (its counters, workers, store), with a dashed line there on every chart.
 * Read-only: nothing here talks to a lab. No inline script: the page's CSP is script-src 'self'.
 */
(function () {
  "use strict";

  var CHART_HEIGHT = 200;
  // How each counter is written (the server renders the same).
  var DECIMALS = { rps: 1, latency_p50_ms: 1, latency_p99_ms: 1 };
  var run = null; // the export: {frames, points, marks, ...}
  var marks = []; // its marks as the charts draw them: {x: seconds into the run, label}
  var current = 0; // the frame shown
  var charts = [];

  function seconds(t) {
    return Math.round(t) + " s";
  }

  // -- charts ------------------------------------------------------------------------

  // The actions as labelled lines, and the slider's time as a dashed one.
  function drawRunMarks(el) {
    return function (u) {
      pgCharts.drawMarks(u, el, marks);
      var frame = run.frames[current];
      if (frame) {
        u.ctx.save();
        u.ctx.strokeStyle = pgCharts.cssVar(el, "--pg-focus", "#2563eb");
        u.ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
        pgCharts.vline(u, frame.t, pgCharts.DASHED);
        u.ctx.restore();
      }
      el.setAttribute("data-marks", String(marks.length));
    };
  }

  function makeChart(el, defs) {
    var first = run.frames.length ? run.frames[0].t : 0;
    var last = run.frames.length ? run.frames[run.frames.length - 1].t : 0;
    return pgCharts.make(el, defs, {
      height: CHART_HEIGHT,
      xRange: [first, Math.max(first + 1, last)],
      xValues: function (u, values) { return values.map(seconds); },
      xIncrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600],
      draw: drawRunMarks(el),
      data: [run.points.map(function (p) { return p.t; })].concat(defs.map(function (d) {
        return run.points.map(function (p) { return p[d.key] == null ? null : p[d.key]; });
      })),
    });
  }

  function setupCharts(root) {
    charts.forEach(function (entry) { entry.destroy(); });
    charts = [];
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var defs = pgCharts.SERIES[el.getAttribute("data-chart")];
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
    charts.forEach(function (entry) { entry.chart.redraw(false, false); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("run");
    var scrub = document.getElementById("run-scrub");
    if (!root || !scrub) return;
    fetch(root.getAttribute("data-export"), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        run = data;
        marks = run.marks.map(function (m) { return { x: m.t, label: m.label }; });
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
