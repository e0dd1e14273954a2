// The thank-you page's "Is that right?" buttons answer in place: the form is
// posted with fetch and the server's fragment replaces the suggestion box.
// Without JavaScript the same form posts normally and the page reloads.
(function () {
  "use strict";
  if (!window.fetch || !window.FormData) return;
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.matches("form[data-inplace]")) return;
    e.preventDefault();
    var pressed = e.submitter;
    var data = new FormData(form);  // submit buttons are not included: add the one pressed
    if (pressed && pressed.name) data.append(pressed.name, pressed.value);
    var box = form.parentNode;
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, {method: "POST", body: data, credentials: "same-origin",
                        headers: {"X-Requested-With": "XMLHttpRequest", "Accept": "text/html"}})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        box.innerHTML = html;
        var done = box.querySelector("#suggestion-answered, [role=alert]");
        if (done) { done.setAttribute("tabindex", "-1"); done.focus(); }
      })
      .catch(function () {  // network trouble: let the browser post it the ordinary way
        if (pressed && pressed.name) {
          var field = document.createElement("input");
          field.type = "hidden"; field.name = pressed.name; field.value = pressed.value;
          form.appendChild(field);
        }
        form.removeAttribute("data-inplace");
        HTMLFormElement.prototype.submit.call(form);
      });
  });
})();
