/*
 * The lab page's glue. An htmx extension ("lab") unwraps the socket's JSON messages
 * ({type, html, snapshot}) into the HTML that htmx swaps, and feeds the uPlot charts from
 * each snapshot; the controls' commands (JSON in data-command, see
 * docs/playground-contract.md) go out on the socket the ws extension opened.
 * No inline script anywhere: the page runs under a CSP with script-src 'self'.
 */
(function () {
  "use strict";

  var NUMERIC = {
    rate: true, users: true, work_ms: true, worker_concurrency: true, session_ttl: true,
    store_latency_ms: true, store_jitter_ms: true, value: true,
  };
  var CHART_HEIGHT = 220;
  // The learner's actions, drawn on every chart as a vertical line with a label.
  var MARKED = {
    "worker.killed": true, "worker.stopping": true, "worker.paused": true,
    "worker.resumed": true, "worker.restarted": true, "worker.added": true,
    "worker.removed": true, "lab.reset": true, "users.rate": true, "users.count": true,
    "deploy.started": true, "store.killed": true, "store.restarted": true,
    "store.latency": true, "workers.capacity": true, "users.session_ttl": true,
  };
  var marks = []; // {x: seconds before the newest point, label}
  var charts = {};
  var lastSeries = null;
  var latest = null; // the newest snapshot's counters (the runscenario JSON keys)
  var change = null; // the learner's last action: {label, base counters}
  var changeShownAt = 0;
  // What an action did, in the order that matters: a loss first.
  var CHANGE_COUNTERS = [
    ["sessions_lost", "sessions lost"],
    ["carts_lost", "carts lost"],
    ["requests_failed", "failed requests"],
    ["relogins", "re-logins"],
  ];
  var socket = null;
  var alertTimer = null;
  var poll = null; // the open question to the class, from the newest snapshot
  var answeredSeq = null; // the question this watcher answered (said to them alone)

  function labRoot() {
    return document.getElementById("lab");
  }

  // -- charts ------------------------------------------------------------------------

  function secondsAgo(u, values) {
    return values.map(function (v) {
      return v === 0 ? "now" : Math.round(v) + "s";
    });
  }

  // The marks within the last 60 seconds; data-marks on the chart says how many.
  function drawLiveMarks(el) {
    return function (u) {
      var shown = marks.filter(function (mark) { return mark.x >= -60 && mark.x <= 0; });
      pgCharts.drawMarks(u, el, shown);
      el.setAttribute("data-marks", String(shown.length));
    };
  }

  function makeChart(el, defs) {
    return pgCharts.make(el, defs, {
      height: CHART_HEIGHT,
      xRange: [-60, 0],
      xValues: secondsAgo,
      draw: drawLiveMarks(el),
    });
  }

  function markEvents(events, series) {
    if (!events || !series || !series.length) return;
    var last = series[series.length - 1].t;
    marks = events.filter(function (e) { return MARKED[e.kind]; }).map(function (e) {
      // "worker-1 killed (SIGKILL, pid 1234)." reads as "worker-1 killed".
      return { x: e.t - last, label: e.text.split(/[(:;.]/)[0].trim() };
    });
  }

  function setupCharts(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var name = el.getAttribute("data-chart");
      var defs = pgCharts.SERIES[name];
      if (defs && !charts[name]) charts[name] = makeChart(el, defs);
    });
  }

  function feedCharts(series) {
    if (!series || !series.length) return;
    lastSeries = series;
    var last = series[series.length - 1].t;
    var xs = series.map(function (p) { return p.t - last; });
    Object.keys(charts).forEach(function (name) {
      var entry = charts[name];
      var data = [xs].concat(entry.keys.map(function (k) {
        return series.map(function (p) { return p[k] == null ? null : p[k]; });
      }));
      entry.chart.setData(data, true);
    });
  }

  // -- page state --------------------------------------------------------------------

  // Fill the load form with the lab's real values, unless the learner is editing it.
  function syncLoadForm(root, snapshot) {
    var store = snapshot.store;
    var storeControls = root.querySelector("#lab-store-controls");
    if (storeControls) storeControls.hidden = !store;
    root.querySelectorAll("[data-snapshot]").forEach(function (input) {
      var key = input.getAttribute("data-snapshot");
      if (document.activeElement === input || input.dataset.dirty === "1") return;
      var value = snapshot[key];
      if (value == null && store) {
        value = { store_latency_ms: store.latency_ms, store_jitter_ms: store.jitter_ms,
                  persistence: store.persistence }[key];
      }
      if (value != null) input.value = String(value);
    });
  }

  // A watcher answers once: the number form shows while a number question is open and
  // unanswered here; the choice buttons (re-rendered with each snapshot) are disabled after.
  function syncPollForm(root) {
    if (!root) return;
    var answered = poll && answeredSeq === poll.seq;
    var form = root.querySelector("#lab-poll-number");
    if (form) form.hidden = !(poll && poll.state === "open" && poll.kind === "number" && !answered);
    root.querySelectorAll("[data-poll-answer]").forEach(function (button) {
      if (answered) button.disabled = true;
    });
    var mine = root.querySelector("#lab-poll-mine");
    if (mine && poll && mine.getAttribute("data-seq") !== String(poll.seq)) mine.textContent = "";
  }

  document.addEventListener("htmx:wsAfterMessage", function () {
    syncPollForm(labRoot());
  });

  function setConnection(root, state, text) {
    var el = root && root.querySelector("#lab-conn");
    if (!el || el.getAttribute("data-state") === state) return;
    el.setAttribute("data-state", state);
    el.textContent = text;
  }

  function clearAlertLater(root) {
    if (alertTimer) clearTimeout(alertTimer);
    alertTimer = setTimeout(function () {
      var alert = root.querySelector("#lab-alert");
      if (alert) alert.textContent = "";
    }, 6000);
  }

  function endLab(root, text) {
    if (!root) return;
    root.classList.add("is-gone");
    root.querySelectorAll("button, input").forEach(function (el) { el.disabled = true; });
    setConnection(root, "gone", text);
  }

  htmx.defineExtension("lab", {
    transformResponse: function (text, xhr) {
      if (xhr || typeof text !== "string" || text.charAt(0) !== "{") return text;
      var root = labRoot();
      var message;
      try {
        message = JSON.parse(text);
      } catch (e) {
        return "";
      }
      if (message.type === "snapshot" && message.snapshot) {
        setConnection(root, "live", "Live");
        markEvents(message.snapshot.events, message.snapshot.series);
        feedCharts(message.snapshot.series);
        syncLoadForm(root, message.snapshot);
        poll = message.snapshot.poll || null;
        syncPollForm(root);
        latest = message.snapshot.metrics || latest;
        showChange(root, false);
      } else if (message.type === "answered") {
        answeredSeq = message.seq;
        syncPollForm(root);
      } else if (message.type === "error") {
        clearAlertLater(root);
      } else if (message.type === "closed" || message.type === "refused") {
        endLab(root, message.type === "refused" ? "Not your lab" : "Ended");
      }
      return message.html || "";
    },
  });

  // -- commands ----------------------------------------------------------------------

  // Not ws-send: htmx binds ws-send when it processes an ancestor, so controls that a
  // morph adds later (a new worker's buttons) would stay dead. One delegated listener
  // serves every control, present or future.
  function send(command) {
    if (socket) socket.send(JSON.stringify(command));
  }

  function commandOf(el) {
    try {
      return JSON.parse(el.getAttribute("data-command"));
    } catch (e) {
      return null;
    }
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("#lab button[data-command]");
    if (!button || button.disabled) return;
    var command = commandOf(button);
    if (!command) return;
    send(command);
    if (command.action === "answer" || command.action === "close_question") return;
    // From now on the strip counts what this action did; the keyboard focus goes there,
    // not to the page (a Kill button is disabled once its worker is down).
    change = { label: button.textContent.replace(/\s+/g, " ").trim(), base: latest || {} };
    var strip = showChange(labRoot(), true);
    if (strip) strip.focus();
  });

  // The change strip: "Since Kill worker-1: +4 sessions lost, …", measured from the
  // snapshots. Its text changes at most once a second, so a screen reader hears the new
  // figures, not five updates a second.
  function showChange(root, now) {
    var strip = root && root.querySelector("#lab-change");
    if (!strip || !change) return strip;
    var stamp = Date.now();
    if (!now && stamp - changeShownAt < 1000) return strip;
    var parts = CHANGE_COUNTERS.map(function (pair) {
      var delta = ((latest || {})[pair[0]] || 0) - (change.base[pair[0]] || 0);
      return "+" + Math.max(0, delta) + " " + pair[1];
    });
    var text = "Since " + change.label + ": " + parts.join(", ");
    if (strip.textContent !== text) strip.textContent = text;
    strip.hidden = false;
    changeShownAt = stamp;
    return strip;
  }

  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form.matches || !form.matches("#lab form[data-command]")) return;
    evt.preventDefault();
    var command = commandOf(form);
    if (!command) return;
    form.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (input) {
      if (input.type === "radio" && !input.checked) return;
      command[input.name] = NUMERIC[input.name] ? Number(input.value) : input.value;
      delete input.dataset.dirty;
    });
    send(command);
    if (command.action === "restart_store") {
      // An action with consequences to count, like the buttons' (the strip, the focus).
      var submit = form.querySelector("button[type=submit]");
      change = { label: submit ? submit.textContent.trim() : "Restart store", base: latest || {} };
      var strip = showChange(labRoot(), true);
      if (strip) strip.focus();
    }
  });

  document.addEventListener("input", function (evt) {
    if (evt.target.matches && evt.target.matches("[data-snapshot]")) {
      evt.target.dataset.dirty = "1";
    }
  });

  // -- presenter shortcuts (the projector's layout, #lab[data-present]) ---------------

  // A letter for a worker action, then the worker's number: k 1 kills worker-1.
  var WORKER_KEYS = { k: "kill", s: "stop", p: "pause", r: "restart" };
  var LAB_KEYS = { a: "add_worker", d: "deploy", c: "close_question" };
  var pendingKey = null;
  var pendingTimer = null;

  function sayKey(root, text) {
    var el = root.querySelector("#lab-key");
    if (el) el.textContent = text;
  }

  function pressButton(button) {
    if (button && !button.disabled) button.click();
  }

  document.addEventListener("keydown", function (evt) {
    var root = labRoot();
    if (!root || !root.hasAttribute("data-present")) return;
    if (evt.altKey || evt.ctrlKey || evt.metaKey || evt.defaultPrevented) return;
    var target = evt.target;
    if (target && target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    var key = evt.key.toLowerCase();
    if (pendingKey && /^[0-9]$/.test(key)) {
      var action = WORKER_KEYS[pendingKey];
      var card = root.querySelector("#card-worker-" + key);
      if (action === "pause" && card && card.getAttribute("data-status") === "paused") action = "resume";
      var button = card && Array.prototype.find.call(
        card.querySelectorAll("button[data-command]"),
        function (b) { var c = commandOf(b); return c && c.action === action; }
      );
      sayKey(root, button ? action + " worker-" + key : "No worker-" + key + " to " + action + ".");
      pressButton(button);
      pendingKey = null;
      evt.preventDefault();
      return;
    }
    pendingKey = null;
    if (WORKER_KEYS[key]) {
      pendingKey = key;
      sayKey(root, WORKER_KEYS[key] + ": which worker? Press its number.");
      if (pendingTimer) clearTimeout(pendingTimer);
      pendingTimer = setTimeout(function () { pendingKey = null; sayKey(root, ""); }, 2000);
      evt.preventDefault();
    } else if (LAB_KEYS[key]) {
      var found = Array.prototype.find.call(
        root.querySelectorAll("button[data-command]"),
        function (b) { var c = commandOf(b); return c && c.action === LAB_KEYS[key]; }
      );
      sayKey(root, found ? LAB_KEYS[key].replace("_", " ") : "Nothing to " + LAB_KEYS[key].replace("_", " ") + " now.");
      pressButton(found);
      evt.preventDefault();
    }
  });

  // -- socket life -------------------------------------------------------------------

  document.addEventListener("htmx:wsOpen", function (evt) {
    socket = evt.detail.socketWrapper;
    setConnection(evt.target, "live", "Live");
  });

  document.addEventListener("htmx:wsClose", function (evt) {
    var root = labRoot();
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 0;
    if (!root) return;
    if (code === 4403) endLab(root, "Not your lab");
    else if (code >= 4000) endLab(root, "Ended");
    else if (!root.classList.contains("is-gone")) setConnection(root, "reconnecting", "Reconnecting…");
  });

  // The change strip sticks just below the site's sticky header, whose height depends on
  // how its links wrap: measured, not guessed.
  function measureHeader() {
    var header = document.querySelector(".site-header");
    if (header) {
      document.documentElement.style.setProperty(
        "--site-header-height", header.getBoundingClientRect().height + "px"
      );
    }
  }
  window.addEventListener("resize", measureHeader);

  document.addEventListener("DOMContentLoaded", function () {
    var root = labRoot();
    measureHeader();
    if (root) setupCharts(root);
  });

  // Chart colours come from the stylesheet: redraw the charts when the theme changes.
  document.addEventListener("course:themechange", function () {
    var root = labRoot();
    if (!root) return;
    Object.keys(charts).forEach(function (name) {
      charts[name].destroy();
      delete charts[name];
    });
    setupCharts(root);
    if (lastSeries) feedCharts(lastSeries);
  });
})();
