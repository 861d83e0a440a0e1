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
