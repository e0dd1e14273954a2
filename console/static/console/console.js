// Behaviour that would otherwise be inline in the console's pages (the Content-Security-Policy
// allows no inline script): the queue's select-all box, confirmations before a form is sent
// (data-confirm), and clearing an htmx form once it has been saved (data-reset-on-success).
(function () {
  "use strict";
  document.addEventListener("change", function (e) {
    if (e.target.id === "select-all") {
      document.querySelectorAll('input[name="selected"]').forEach(function (b) { b.checked = e.target.checked; });
    }
  });
  document.addEventListener("submit", function (e) {
    var message = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) e.preventDefault();
  });
  document.body.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt;
    if (e.detail.successful && form && form.matches && form.matches("form[data-reset-on-success]")) form.reset();
  });
})();
