// Site-wide behaviour that needs no markup of its own.
(function () {
  "use strict";
  // A boosted page swap keeps the Content-Security-Policy of the document it lands in. Tell
  // the server whether this document's policy lets diagrams style themselves, so it can ask
  // for a full page load when it does not (see course.views.lesson). Read once, at load:
  // the policy of this document never changes, whatever later swaps bring.
  var inlineStylesAllowed = Boolean(
    document.querySelector('meta[name="course-inline-styles"][content="allowed"]')
  );
  document.addEventListener("htmx:configRequest", function (event) {
    if (inlineStylesAllowed) {
      event.detail.headers["X-Inline-Styles"] = "allowed";
    }
  });
})();

// A lesson's table of contents marks the section being read (aria-current on its link).
// Lessons arrive by full loads and by boosted swaps, so it is set up on every htmx:load
// that brings one, and on the first load without htmx.
(function () {
  "use strict";
  var headings = [];
  var links = {};
  var marked = null;
  var pending = false;

  function mark() {
    pending = false;
    var line = window.innerHeight * 0.3;
    var current = null;
    for (var i = 0; i < headings.length; i++) {
      if (headings[i].getBoundingClientRect().top > line) break;
      current = headings[i];
    }
    var link = current ? links[current.id] : null;
    if (link === marked) return;
    if (marked) marked.removeAttribute("aria-current");
    if (link) link.setAttribute("aria-current", "true");
    marked = link;
  }

  function watch(root) {
    var toc = root && root.querySelector ? root.querySelector(".lesson-toc") : null;
    if (!toc) return;
    links = {};
    marked = null;
    toc.querySelectorAll('a[href^="#"]').forEach(function (link) {
      links[decodeURIComponent(link.hash.slice(1))] = link;
    });
    headings = Object.keys(links)
      .map(function (id) { return document.getElementById(id); })
      .filter(Boolean)
      .sort(function (a, b) {
        return a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1;
      });
    mark();
  }

  window.addEventListener("scroll", function () {
    if (!pending && headings.length) {
      pending = true;
      window.requestAnimationFrame(mark);
    }
  }, { passive: true });
  document.addEventListener("htmx:load", function (event) { watch(event.target); });
  document.addEventListener("DOMContentLoaded", function () { watch(document); });
})();
