// Console keyboard shortcuts. Any element with data-key="<key>" is clicked
// (links, buttons) or focused (inputs, selects, textareas) when that key is
// pressed outside a text box. Everything also works with Tab + Enter.
//
// An open <details data-key-scope> (the reject reasons) takes over the keys:
// only the data-key elements inside it apply, Esc closes it. Closed, its
// contents never answer a key (only its <summary> does, to open it).
// A key with no element to act on shows the [data-key-hint="<key>"] message
// instead, if the page has one (Enter with no category to accept).
(function () {
  "use strict";
  function openScope() {
    return document.querySelector("details[data-key-scope][open]");
  }
  function target(key, scope) {
    var sel = '[data-key="' + (window.CSS && CSS.escape ? CSS.escape(key) : key) + '"]';
    var all = document.querySelectorAll(sel);
    for (var i = 0; i < all.length; i++) {
      var owner = all[i].closest("[data-key-scope]");
      if (scope ? owner === scope : (!owner || (all[i].matches("summary") && all[i].parentNode === owner))) {
        return all[i];
      }
    }
    return null;
  }
  function showHint(key) {
    var hint = document.querySelector('[data-key-hint="' + (window.CSS && CSS.escape ? CSS.escape(key) : key) + '"]');
    if (!hint) return false;
    hint.hidden = false;
    hint.classList.remove("flash");
    void hint.offsetWidth;  // restart the highlight on every press
    hint.classList.add("flash");
    return true;
  }
  var submitting = false;
  document.addEventListener("submit", function (e) {
    if (submitting) { e.preventDefault(); return; }  // no double submits from key repeat
    if (!e.target.hasAttribute("hx-post")) submitting = true;
  });
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    var t = e.target;
    if (t.matches("input, textarea, select, [contenteditable]")) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (e.key === "Enter" && t.matches("a, button, summary")) return;  // native activation
    var key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    var scope = openScope();
    if (scope && key === "Escape") {
      e.preventDefault();
      scope.open = false;
      return;
    }
    var el = target(key, scope);
    if (!el || el.disabled) {
      if (!scope && showHint(key)) e.preventDefault();
      return;
    }
    e.preventDefault();
    if (el.matches("input, textarea, select")) el.focus();
    else el.click();
  });
})();
