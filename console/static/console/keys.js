// Console keyboard shortcuts. Any element with data-key="<key>" is clicked
// (links, buttons) or focused (inputs, selects, textareas) when that key is
// pressed outside a text box. Everything also works with Tab + Enter.
(function () {
  "use strict";
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
    var el = document.querySelector('[data-key="' + (window.CSS && CSS.escape ? CSS.escape(key) : key) + '"]');
    if (!el || el.disabled) return;
    e.preventDefault();
    if (el.matches("input, textarea, select")) el.focus();
    else el.click();
  });
})();
