// overview.js: draws the overview's charts with uPlot (loaded before it).
// Each div.plot[data-chart=ID] gets the series of the JSON data block
// <script type="application/json" id=ID> ({x: [Unix seconds], series:
// [{label, values}]}), which the browser does not run, so the
// Content-Security-Policy holds. Without JavaScript the tables below the
// charts show the same counts.
"use strict";
(function () {
  var colors = ["#0b5cad", "#17663a", "#c27c00", "#a4262c"];

  function draw(el) {
    var block = document.getElementById(el.getAttribute("data-chart"));
    if (!block || typeof uPlot === "undefined") {
      return;
    }
    var data = JSON.parse(block.textContent);
    var series = [{label: "UTC"}];
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
      axes: [{}, {size: 60}],
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }
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
