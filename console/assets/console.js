// console.js: the console's own script, loaded from 'self' (the
// Content-Security-Policy allows no inline script). Every page works
// without it; with it, htmx requests carry the session's CSRF token.
"use strict";
document.addEventListener("htmx:config:request", function (e) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && e.detail && e.detail.ctx) {
    e.detail.ctx.request.headers["X-CSRF-Token"] = meta.content;
  }
});

// Copy buttons: a button.copy[data-copy=ID] copies the text of element ID.
// They are hidden in the HTML and shown here, so without JavaScript the
// text stays there to select by hand.
function copyText(el) {
  var text = el.textContent;
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  var range = document.createRange();
  range.selectNodeContents(el);
  var sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
  document.execCommand("copy");
  return Promise.resolve();
}
function armCopyButtons(root) {
  root.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
    b.hidden = false;
  });
}
document.addEventListener("DOMContentLoaded", function () { armCopyButtons(document); });
document.addEventListener("click", function (e) {
  var b = e.target.closest && e.target.closest("button.copy[data-copy]");
  if (!b) {
    return;
  }
  var el = document.getElementById(b.getAttribute("data-copy"));
  if (!el) {
    return;
  }
  copyText(el).then(function () {
    b.textContent = "Copied";
    b.classList.add("copied");
  }, function () {
    b.textContent = "Select and copy";
  });
});
