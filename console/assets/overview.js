// overview.js: draws the overview's charts with uPlot (loaded before it).
// Each div.plot[data-chart=ID] gets the series of the JSON data block
// <script type="application/json" id=ID> ({x: [Unix seconds], series:
// [{label, values}]}), which the browser does not run, so the
// Content-Security-Policy holds. Without JavaScript the tables below the
// charts show the same counts.
"use strict";
(function () {
  var colors = ["#0b5cad", "#17663a", "#c27c00", "#a4262c"];

  function pad(n) { return n < 10 ? "0" + n : String(n); }
  // utc writes Unix seconds as UTC "HH:MM", with the date ("MM-DD HH:MM")
  // when withDate.
  function utc(ts, withDate) {
    var d = new Date(ts * 1e3);
    var time = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    return withDate ? pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + time : time;
  }

  function draw(el) {
    var block = document.getElementById(el.getAttribute("data-chart"));
    if (!block || typeof uPlot === "undefined") {
      return;
    }
    var data = JSON.parse(block.textContent);
    var long = data.x.length > 1 && data.x[data.x.length - 1] - data.x[0] > 36 * 3600;
    var series = [{label: "UTC", value: function (u, v) { return v == null ? "--" : utc(v, true); }}];
    var columns = [data.x];
    data.series.forEach(function (s, i) {
      series.push({label: s.label, stroke: colors[i % colors.length], width: 2, points: {show: false}});
      columns.push(s.values);
    });
    var plot = new uPlot({
      width: el.clientWidth || 600,
      height: 240,
      series: series,
      scales: {y: {range: function (u, min, max) { return [0, Math.max(max, 1)]; }}},
      axes: [{values: function (u, splits) { return splits.map(function (v) { return utc(v, long); }); }},
        {size: 60}]
    }, columns, el);
    window.addEventListener("resize", function () {
      plot.setSize({width: el.clientWidth || 600, height: 240});
    });
  }

  function drawAll() {
    document.querySelectorAll("div.plot[data-chart]").forEach(draw);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
