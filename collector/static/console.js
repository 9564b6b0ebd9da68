// netmedic NOC console: optional enhancements only; every page works without this file.
// - the incident filters apply as soon as a select changes;
// - timestamps get a tooltip with the viewer's local time.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("select").forEach(function (s) {
      s.addEventListener("change", function () { filters.submit(); });
    });
  }
  document.querySelectorAll("td, dd, span.when").forEach(function (el) {
    var t = el.textContent.trim();
    if (/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/.test(t)) {
      var d = new Date(t.replace(" ", "T"));
      if (!isNaN(d)) { el.title = d.toLocaleString(); }
    }
  });
});
