// Computed trait backfills: every waiting or running backfill on the page polls its trait in the API every two
// seconds and moves its progress bar; a block marked data-reload (the trait's own page) reloads when it ends, so
// the distribution and changes below it appear.
(function () {
  "use strict";
  const format = new Intl.NumberFormat();
  const labels = { pending: "Waiting to start", running: "Running", done: "Done", failed: "Failed" };

  function update(block) {
    fetch(block.dataset.backfill, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (trait) {
        const bar = block.querySelector(".progress");
        bar.setAttribute("aria-valuenow", trait.backfill_percent);
        bar.querySelector("span").style.width = trait.backfill_percent + "%";
        block.querySelector('[data-field="count"]').textContent =
          format.format(trait.backfill_done) + " / " + format.format(trait.backfill_total);
        const status = block.querySelector('[data-field="status"]');
        status.textContent = labels[trait.backfill_status] || trait.backfill_status;
        status.className = "badge " + trait.backfill_status;
        const ended = trait.backfill_status === "done" || trait.backfill_status === "failed";
        block.dataset.status = trait.backfill_status;
        if (ended && block.dataset.reload) {
          window.location.reload();
        }
      })
      .catch(function () { /* try again on the next tick */ });
  }

  setInterval(function () {
    document.querySelectorAll('[data-backfill][data-status="pending"], [data-backfill][data-status="running"]')
      .forEach(update);
  }, 2000);
})();
