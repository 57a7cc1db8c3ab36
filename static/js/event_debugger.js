// Live event debugger: polls the feed every two seconds and prepends events it has not shown yet.
(function () {
  "use strict";
  const form = document.getElementById("debugger-filters");
  const rows = document.getElementById("debugger-rows");
  const pauseButton = document.getElementById("debugger-pause");
  const dot = document.getElementById("live-dot");
  const state = document.getElementById("live-state");
  const MAX_ROWS = 200;
  let newestId = 0;
  let paused = false;

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function render(event, fresh) {
    const tr = document.createElement("tr");
    if (fresh) tr.className = "fresh";
    tr.appendChild(cell(new Date(event.received_at).toLocaleTimeString()));
    tr.appendChild(cell(event.source__name));
    tr.appendChild(cell(event.type));
    const name = document.createElement("td");
    const link = document.createElement("a");
    link.href = event.customer_url;
    link.textContent = event.name || "(" + event.type + ")";
    name.appendChild(link);
    tr.appendChild(name);
    tr.appendChild(cell(event.user_id || event.anonymous_id));
    const props = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = JSON.stringify(event.properties).slice(0, 200);
    props.appendChild(code);
    tr.appendChild(props);
    return tr;
  }

  async function poll(reset) {
    if (paused) return;
    if (reset) {
      newestId = 0;
      rows.innerHTML = "";
    }
    const params = new URLSearchParams(new FormData(form));
    params.set("after", String(newestId));
    try {
      const response = await fetch(form.dataset.feed + "?" + params.toString(), { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.statusText);
      const data = await response.json();
      const placeholder = rows.querySelector("tr.empty");
      if (data.events.length && placeholder) placeholder.remove();
      const firstLoad = newestId === 0;
      data.events.slice().reverse().forEach(function (event) {
        rows.insertBefore(render(event, !firstLoad), rows.firstChild);
        newestId = Math.max(newestId, event.id);
      });
      while (rows.children.length > MAX_ROWS) rows.removeChild(rows.lastChild);
      if (!rows.children.length) {
        rows.innerHTML = '<tr class="empty"><td colspan="6" class="muted">No events match.</td></tr>';
      }
      state.textContent = "Live";
    } catch (error) {
      state.textContent = "Reconnecting…";
    }
  }

  form.addEventListener("change", function () { poll(true); });
  form.addEventListener("input", function () { poll(true); });
  form.addEventListener("submit", function (e) { e.preventDefault(); poll(true); });
  pauseButton.addEventListener("click", function () {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    dot.classList.toggle("paused", paused);
    state.textContent = paused ? "Paused" : "Live";
  });
  poll(true);
  setInterval(function () { poll(false); }, 2000);
})();
