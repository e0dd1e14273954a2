// GOV.UK error summary: after a failed submit, focus moves to the summary so a screen reader reads
// it and the keyboard starts from it; each link focuses the field it names with its label in view
// (a plain fragment link only scrolls, and puts the label out of sight under the page top).
(function () {
  "use strict";
  var summary = document.querySelector("[data-error-summary]");
  if (!summary) return;
  summary.focus();
  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    var target = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!target) return;
    var field = Array.prototype.find.call(
      target.matches("input, select, textarea, button") ? [target] :
        target.querySelectorAll("input:not([type=hidden]), select, textarea, button, [tabindex='0']"),
      function (el) { return el.offsetParent !== null && !el.disabled; });
    if (!field) return;
    event.preventDefault();
    var legend = field.closest("fieldset") && field.closest("fieldset").querySelector("legend");
    var label = (field.id && document.querySelector("label[for='" + field.id + "']")) || legend || field;
    label.scrollIntoView();
    field.focus({preventScroll: true});
  });
})();
