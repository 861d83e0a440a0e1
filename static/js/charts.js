/*
 * The playground's uPlot charts, shared by the lab page (static/js/lab.js: the last 60
 * seconds, live) and a saved run's page (static/js/run.js: the whole run): the series of
 * each chart, their colours from the stylesheet, and the labelled vertical lines that mark
 * the learner's actions. No inline script: the pages run under a CSP with script-src 'self'.
 */
window.pgCharts = (function () {
  "use strict";

  // The second series of a chart is dashed: series differ by more than their colour.
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

  function cssVar(el, name, fallback) {
    var value = getComputedStyle(el).getPropertyValue(name).trim();
    return value || fallback;
  }

  function yRange(u, min, max) {
    return [0, Math.max(1, max * 1.15)];
  }

  // A vertical line at x (in the x scale's units) across the plot; returns its position.
  function vline(u, x, dash) {
    var ctx = u.ctx;
    var pos = Math.round(u.valToPos(x, "x", true));
    ctx.setLineDash(dash || []);
    ctx.beginPath();
    ctx.moveTo(pos, u.bbox.top);
    ctx.lineTo(pos, u.bbox.top + u.bbox.height);
    ctx.stroke();
    return pos;
  }

  // The marks ({x, label}) as labelled lines, in the page's text colour.
  function drawMarks(u, el, marks) {
    var ctx = u.ctx;
    var ratio = window.devicePixelRatio || 1;
    ctx.save();
    ctx.strokeStyle = cssVar(el, "--pg-text", "#1c222b");
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = ratio;
    ctx.font = Math.round(12 * ratio) + "px sans-serif";
    marks.forEach(function (mark) {
      ctx.fillText(mark.label, vline(u, mark.x) + 4, u.bbox.top + 14 * ratio);
    });
    ctx.restore();
  }

  // A chart of `defs` (one of SERIES) in `el`: options.height, options.xRange,
  // options.xValues (the x axis's tick labels), options.xIncrs (the steps its ticks may
  // take; uPlot's own without), options.draw (called on each draw, after
  // the series) and options.data (uPlot's columns, x first). Follows el's width.
  function make(el, defs, options) {
    var muted = cssVar(el, "--pg-muted", "#6b7280");
    var grid = cssVar(el, "--pg-grid", "#e5e7eb");
    var axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { show: false } };
    var xAxis = Object.assign({ values: options.xValues, space: 50 }, axis);
    if (options.xIncrs) xAxis.incrs = options.xIncrs;
    var opts = {
      width: Math.max(200, el.clientWidth),
      height: options.height,
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: { x: { time: false, range: options.xRange }, y: { range: yRange } },
      axes: [xAxis, Object.assign({ size: 44 }, axis)],
      series: [{}].concat(defs.map(function (d) {
        return {
          stroke: cssVar(el, d.color, "#2563eb"),
          fill: d.fill ? cssVar(el, d.fill, undefined) : undefined,
          width: 2,
          dash: d.dash,
          points: { show: false },
        };
      })),
      plugins: [{ hooks: { draw: [options.draw] } }],
    };
    var data = options.data || [[]].concat(defs.map(function () { return []; }));
    var chart = new uPlot(opts, data, el);
    var observer = null;
    if (window.ResizeObserver) {
      observer = new ResizeObserver(function () {
        chart.setSize({ width: Math.max(200, el.clientWidth), height: options.height });
      });
      observer.observe(el);
    }
    return {
      chart: chart,
      keys: defs.map(function (d) { return d.key; }),
      destroy: function () {
        if (observer) observer.disconnect();
        chart.destroy();
      },
    };
  }

  return {
    SERIES: SERIES, DASHED: DASHED, cssVar: cssVar, vline: vline, drawMarks: drawMarks,
    make: make,
  };
})();
