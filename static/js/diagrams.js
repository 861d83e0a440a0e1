// Draws the page's ```mermaid diagrams (<pre class="mermaid">) with the vendored Mermaid,
// in the current light or dark theme, and redraws them when the theme changes.
// Included only on pages with a diagram; htmx re-runs it after each boosted page swap.
(function () {
  "use strict";
  var script = document.currentScript;
  var state = window.courseDiagrams || (window.courseDiagrams = { sources: new WeakMap() });

  function theme() {
    var root = document.documentElement;
    var dark = root.dataset.theme
      ? root.dataset.theme === "dark"
      : window.matchMedia("(prefers-color-scheme: dark)").matches;
    return dark ? "dark" : "default";
  }

  function mermaidReady() {
    if (window.mermaid) {
      return Promise.resolve(window.mermaid);
    }
    if (!state.loading) {
      state.loading = new Promise(function (resolve, reject) {
        var tag = document.createElement("script");
        tag.src = script.dataset.mermaid;
        tag.onload = function () {
          resolve(window.mermaid);
        };
        tag.onerror = reject;
        document.head.appendChild(tag);
      });
    }
    return state.loading;
  }

  function draw(redraw) {
    var nodes = Array.prototype.slice.call(document.querySelectorAll("pre.mermaid"));
    if (!nodes.length) {
      return;
    }
    return mermaidReady().then(function (mermaid) {
      nodes.forEach(function (node) {
        if (!state.sources.has(node)) {
          state.sources.set(node, node.textContent);
        } else if (redraw) {
          node.removeAttribute("data-processed");
          node.textContent = state.sources.get(node);
        }
      });
      mermaid.initialize({
        startOnLoad: false,
        securityLevel: "strict",
        theme: theme(),
        fontFamily: getComputedStyle(document.body).fontFamily,
      });
      return mermaid.run({ nodes: nodes.filter(function (node) {
        return !node.hasAttribute("data-processed");
      }) });
    });
  }

  if (!state.listening) {
    state.listening = true;
    document.addEventListener("course:themechange", function () {
      draw(true);
    });
  }
  draw(false);
})();
