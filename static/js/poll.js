// Replace the suggestion fragment until the model has spoken (max ~1 minute).
(function () {
  "use strict";
  var box = document.getElementById("suggestion");
  if (!box || !box.dataset.poll) return;
  var tries = 0;
  function poll() {
    fetch(box.dataset.poll, {headers: {"Accept": "text/html"}}).then(function (r) { return r.text(); })
      .then(function (html) {
        box.innerHTML = html;
        if (html.indexOf("Working out") !== -1 && ++tries < 20) setTimeout(poll, 3000);
      });
  }
  setTimeout(poll, 1500);
})();
