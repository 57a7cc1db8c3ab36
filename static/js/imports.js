// Import progress: every running or waiting import's row polls its progress once a second until it ends.
(function () {
  "use strict";
  const format = new Intl.NumberFormat();
  const labels = { pending: "Waiting", running: "Running", done: "Done", failed: "Failed (can resume)" };

  function update(row) {
    fetch(row.dataset.progress, { headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (job) {
        row.querySelector(".progress > span").style.width = job.percent + "%";
        row.querySelector(".progress").setAttribute("aria-valuenow", job.percent);
        row.querySelector('[data-field="rows"]').textContent =
          format.format(job.processed_rows) + " / " + format.format(job.total_rows);
        ["stored", "duplicates", "rejected_count"].forEach(function (name) {
          row.querySelector('[data-field="' + name + '"]').textContent = format.format(job[name]);
        });
        row.querySelector('[data-field="status"]').textContent = labels[job.status] + (job.error ? " — " + job.error : "");
        row.dataset.status = job.status;
      })
      .catch(function () { /* try again on the next tick */ });
  }

  setInterval(function () {
    document.querySelectorAll('#imports tr[data-status="pending"], #imports tr[data-status="running"]').forEach(update);
  }, 1000);
})();
