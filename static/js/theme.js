// Light or dark: the visitor's choice (remembered in localStorage) or else the system's.
// Loaded in <head> without defer, so the theme is set before the first paint (no flash).
(function () {
  "use strict";
  var KEY = "course-theme";
  var root = document.documentElement;
  var systemDark = window.matchMedia("(prefers-color-scheme: dark)");

  function stored() {
    try {
      return window.localStorage.getItem(KEY);
    } catch (e) {
      return null; // storage blocked: follow the system
    }
  }

  function current() {
    return root.dataset.theme || (systemDark.matches ? "dark" : "light");
  }

  function sync() {
    var dark = current() === "dark";
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(dark));
    });
  }

  function changed() {
    sync();
    document.dispatchEvent(new CustomEvent("course:themechange", { detail: { theme: current() } }));
  }

  var saved = stored();
  if (saved === "dark" || saved === "light") {
    root.dataset.theme = saved;
  }

  // Delegated, so it keeps working after htmx swaps the header.
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("[data-theme-toggle]")) {
      return;
    }
    var next = current() === "dark" ? "light" : "dark";
    root.dataset.theme = next;
    try {
      window.localStorage.setItem(KEY, next);
    } catch (e) {
      // not remembered, still applied
    }
    changed();
  });

  systemDark.addEventListener("change", function () {
    if (!root.dataset.theme) {
      changed();
    }
  });
  document.addEventListener("DOMContentLoaded", sync);
  document.addEventListener("htmx:afterSettle", sync);
})();
