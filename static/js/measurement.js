// Draws the measurement report's chart with Chart.js (static/vendor/chartjs) from the JSON the page embeds.
// The table under the chart holds the same figures, so the page reads the same without JavaScript.
(function () {
  "use strict";
  var source = document.getElementById("measurement-chart-data");
  var canvas = document.getElementById("measurement-chart");
  if (!source || !canvas || typeof window.Chart === "undefined") {
    return;
  }
  var spec = JSON.parse(source.textContent);
  var palette = ["#2563eb", "#f97316", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"];
  var datasets = spec.datasets.map(function (dataset, index) {
    var colour = dataset.benchmark ? "#98a2b3" : palette[index % palette.length];
    var options = {
      label: dataset.label,
      data: dataset.data,
      borderColor: colour,
      backgroundColor: colour,
      spanGaps: true
    };
    if (dataset.benchmark) {
      options.borderDash = [6, 4];
      options.pointRadius = 0;
      options.borderWidth = 1;
    }
    if (dataset.immature) {
      // Hollow points for cohorts whose rates can still rise.
      options.pointBackgroundColor = dataset.immature.map(function (immature) { return immature ? "#ffffff" : colour; });
      options.pointRadius = 4;
    }
    return options;
  });
  canvas.dataset.ready = "true";
  new window.Chart(canvas, {
    type: spec.kind,
    data: { labels: spec.labels, datasets: datasets },
    options: {
      animation: false,
      responsive: true,
      scales: { y: { beginAtZero: true, title: { display: true, text: spec.y } } },
      plugins: { legend: { position: "bottom" } }
    }
  });
})();
