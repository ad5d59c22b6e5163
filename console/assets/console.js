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
