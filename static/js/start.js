// The start form: a stateless lab needs no sticky sessions, so switching the mode sets the
// sticky box to match (on for stateful, off for stateless) until the learner sets it.
(function () {
  "use strict";
  var sticky = document.querySelector('input[name="sticky"]');
  if (!sticky) {
    return;
  }
  var chosen = false;
  sticky.addEventListener("change", function () {
    chosen = true;
  });
  document.querySelectorAll('input[name="mode"]').forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (radio.checked && !chosen) {
        sticky.checked = radio.value === "stateful";
      }
    });
  });
})();
