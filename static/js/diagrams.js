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
        // Mermaid's dark edge labels are #ccc on #585858 (4.4:1): a darker ground makes AA.
        themeVariables: theme() === "dark" ? { edgeLabelBackground: "#333a45" } : {},
        fontFamily: getComputedStyle(document.body).fontFamily,
        fontSize: FONT_PX,
      });
      var done = function () {
        nodes.forEach(legible);
      };
      // One diagram that fails to parse must not leave the others unsized and unnamed.
      return mermaid.run({ nodes: nodes.filter(function (node) {
        return !node.hasAttribute("data-processed");
      }) }).then(done, done);
    });
  }

  // A diagram shrinks with the column, but never below MIN_SCALE of its drawn size, so no
  // label gets smaller than 12 px: past that, its box scrolls sideways, and can be
  // scrolled from the keyboard. Its name is the diagram's accTitle (written as a %% comment
  // in diagram types whose syntax has none, such as mindmap; check_content asks for one).
  var FONT_PX = 16;
  var MIN_SCALE = 12 / FONT_PX;
  var TITLE = /^\s*(?:%%\s*)?accTitle:\s*(.+)$/m;

  function legible(node) {
    var svg = node.querySelector("svg");
    if (!svg || !svg.viewBox || !svg.viewBox.baseVal) {
      return;
    }
    svg.style.minWidth = Math.ceil(svg.viewBox.baseVal.width * MIN_SCALE) + "px";
    var title = TITLE.exec(state.sources.get(node) || "");
    node.setAttribute("tabindex", "0");
    node.setAttribute("role", "region");
    node.setAttribute("aria-label", "Diagram: " + (title ? title[1].trim() : "see the text"));
  }

  if (!state.listening) {
    state.listening = true;
    document.addEventListener("course:themechange", function () {
      draw(true);
    });
  }
  draw(false);
})();
