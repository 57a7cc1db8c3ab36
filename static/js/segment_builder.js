// Condition builder: edits the segment's tree (AND/OR groups with NOT, property and event conditions),
// keeps the hidden `conditions` field in sync, and previews the match count through the API as you type.
(function () {
  "use strict";
  const root = document.getElementById("builder");
  const hidden = document.querySelector('input[name="conditions"]');
  const preview = document.getElementById("preview");
  let tree = JSON.parse(document.getElementById("initial-tree").textContent);
  if (!tree || tree.type !== "group") tree = { type: "group", operator: "and", children: tree ? [tree] : [] };
  let catalogue = { properties: [], event_operators: [] };
  const NO_VALUE = ["is_set", "is_not_set", "is_true", "is_false"];
  const DAYS = ["within_last_days", "within_next_days", "more_than_days_ago"];

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([key, value]) {
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }
  function select(options, value, onchange, label) {
    const node = el("select", { "aria-label": label, onchange: onchange });
    options.forEach(function (option) {
      const opt = el("option", { value: option[0], text: option[1] });
      if (String(option[0]) === String(value)) opt.selected = true;
      node.appendChild(opt);
    });
    return node;
  }
  function spec(key) { return catalogue.properties.find(function (p) { return p.key === key; }); }

  function valueInput(leaf, property) {
    if (!property || NO_VALUE.includes(leaf.operator)) return null;
    const set = function (value) { leaf.value = value; changed(false); };
    if (leaf.operator === "between") {
      const pair = Array.isArray(leaf.value) ? leaf.value : [0, 0];
      const low = el("input", { type: "number", value: pair[0], "aria-label": "From", oninput: function () { set([Number(low.value), Number(high.value)]); } });
      const high = el("input", { type: "number", value: pair[1], "aria-label": "To", oninput: function () { set([Number(low.value), Number(high.value)]); } });
      return el("span", {}, [low, el("span", { text: " and " }), high]);
    }
    if (leaf.operator === "one_of" || leaf.operator === "not_one_of") {
      const text = Array.isArray(leaf.value) ? leaf.value.join(", ") : "";
      return el("input", { type: "text", value: text, placeholder: "a, b, c", "aria-label": "Values",
        oninput: function (e) { set(e.target.value.split(",").map(function (v) { return v.trim(); }).filter(Boolean)); } });
    }
    if (DAYS.includes(leaf.operator)) {
      return el("span", {}, [el("input", { type: "number", min: "0", value: leaf.value == null ? 7 : leaf.value, "aria-label": "Days",
        oninput: function (e) { set(Number(e.target.value)); } }), el("span", { text: " days" })]);
    }
    if (property.choices.length) {
      if (leaf.value == null) leaf.value = property.choices[0];
      return select(property.choices.map(function (c) { return [c, c]; }), leaf.value, function (e) { set(e.target.value); }, "Value");
    }
    const type = property.type === "number" ? "number" : property.type === "date" ? "date" : "text";
    return el("input", { type: type, value: leaf.value == null ? "" : leaf.value, "aria-label": "Value",
      oninput: function (e) { set(type === "number" ? Number(e.target.value) : e.target.value); } });
  }

  function conditionRow(leaf, remove) {
    const property = spec(leaf.property);
    const groups = {};
    catalogue.properties.forEach(function (p) { (groups[p.group] = groups[p.group] || []).push(p); });
    const picker = el("select", { "aria-label": "Property", onchange: function (e) {
      leaf.property = e.target.value; const chosen = spec(leaf.property);
      leaf.operator = chosen.operators[0]; leaf.value = null; changed(true);
    } });
    Object.entries(groups).forEach(function ([name, props]) {
      const group = el("optgroup", { label: name });
      props.forEach(function (p) {
        const opt = el("option", { value: p.key, text: p.label });
        if (p.key === leaf.property) opt.selected = true;
        group.appendChild(opt);
      });
      picker.appendChild(group);
    });
    const operators = property ? property.operators.map(function (o) { return [o, o.replace(/_/g, " ")]; }) : [];
    return el("div", { class: "builder-row" }, [
      picker,
      select(operators, leaf.operator, function (e) { leaf.operator = e.target.value; leaf.value = null; changed(true); }, "Operator"),
      valueInput(leaf, property),
      el("button", { type: "button", class: "secondary", text: "Remove", onclick: remove }),
    ]);
  }

  function eventRow(leaf, remove) {
    if (/^(first|last)_/.test(leaf.operator)) return eventDateRow(leaf, remove);
    const count = leaf.operator === "not_performed" ? null : el("input", { type: "number", min: "0", value: leaf.count == null ? 1 : leaf.count,
      "aria-label": "Times", oninput: function (e) { leaf.count = Number(e.target.value); changed(false); } });
    return el("div", { class: "builder-row" }, [
      el("span", { text: "performed " }),
      el("input", { type: "text", value: leaf.event || "", placeholder: "Event name", "aria-label": "Event",
        oninput: function (e) { leaf.event = e.target.value; changed(false); } }),
      select(catalogue.event_operators.map(function (o) { return [o, o.replace(/_/g, " ")]; }), leaf.operator,
        function (e) { leaf.operator = e.target.value; changed(true); }, "How often"),
      count, count ? el("span", { text: " times" }) : null,
      el("span", { text: " in the last " }),
      el("input", { type: "number", min: "0", value: leaf.within_days == null ? "" : leaf.within_days, placeholder: "any", "aria-label": "Within days",
        oninput: function (e) { if (e.target.value === "") delete leaf.within_days; else leaf.within_days = Number(e.target.value); changed(false); } }),
      el("span", { text: " days" }),
      el("button", { type: "button", class: "secondary", text: "Remove", onclick: remove }),
    ]);
  }

  function eventDateRow(leaf, remove) {
    // "first/last performed before/after a day": a date instead of a count and window.
    return el("div", { class: "builder-row" }, [
      el("span", { text: "event " }),
      el("input", { type: "text", value: leaf.event || "", placeholder: "Event name", "aria-label": "Event",
        oninput: function (e) { leaf.event = e.target.value; changed(false); } }),
      select(catalogue.event_operators.map(function (o) { return [o, o.replace(/_/g, " ")]; }), leaf.operator,
        function (e) { leaf.operator = e.target.value; changed(true); }, "How often"),
      el("input", { type: "date", value: leaf.date || "", "aria-label": "Date",
        oninput: function (e) { leaf.date = e.target.value; changed(false); } }),
      el("button", { type: "button", class: "secondary", text: "Remove", onclick: remove }),
    ]);
  }

  function segmentRow(leaf, remove) {
    // Membership of another segment (cycles are refused when saving).
    const others = (catalogue.segments || []).map(function (seg) { return [seg.id, seg.name]; });
    return el("div", { class: "builder-row" }, [
      select([["in", "is in segment"], ["not_in", "is not in segment"]], leaf.operator,
        function (e) { leaf.operator = e.target.value; changed(false); }, "Membership"),
      select(others, leaf.segment, function (e) { leaf.segment = Number(e.target.value); changed(false); }, "Segment"),
      el("button", { type: "button", class: "secondary", text: "Remove", onclick: remove }),
    ]);
  }

  function groupBox(group, remove) {
    const items = group.children.map(function (child, index) {
      const drop = function () { group.children.splice(index, 1); changed(true); };
      if (child.type === "group") return groupBox(child, drop);
      if (child.type === "event") return eventRow(child, drop);
      if (child.type === "segment") return segmentRow(child, drop);
      return conditionRow(child, drop);
    });
    const first = catalogue.properties[0];
    return el("fieldset", { class: "builder-group" }, [
      el("legend", {}, [
        select([["and", "All of (AND)"], ["or", "Any of (OR)"]], group.operator, function (e) { group.operator = e.target.value; changed(false); }, "Match"),
        el("label", {}, [el("input", { type: "checkbox", onchange: function (e) { group.negate = e.target.checked; changed(false); }, ...(group.negate ? { checked: "" } : {}) }), el("span", { text: " NOT" })]),
        remove ? el("button", { type: "button", class: "secondary", text: "Remove group", onclick: remove }) : null,
      ]),
      ...items,
      el("div", { class: "builder-add" }, [
        el("button", { type: "button", class: "secondary", text: "+ Condition", onclick: function () {
          group.children.push({ type: "condition", property: first.key, operator: first.operators[0], value: null }); changed(true); } }),
        el("button", { type: "button", class: "secondary", text: "+ Event", onclick: function () {
          group.children.push({ type: "event", event: "", operator: "at_least", count: 1 }); changed(true); } }),
        (catalogue.segments || []).length ? el("button", { type: "button", class: "secondary", text: "+ Segment", onclick: function () {
          group.children.push({ type: "segment", segment: catalogue.segments[0].id, operator: "in" }); changed(true); } }) : null,
        el("button", { type: "button", class: "secondary", text: "+ Group", onclick: function () {
          group.children.push({ type: "group", operator: "or", children: [] }); changed(true); } }),
      ]),
    ]);
  }

  function csrfToken() {
    const match = document.cookie.match(/csrftoken=([^;]+)/);
    return match ? match[1] : document.querySelector("[name=csrfmiddlewaretoken]").value;
  }
  let timer = null;
  function schedulePreview() {
    clearTimeout(timer);
    timer = setTimeout(async function () {
      if (!tree.children.length) { preview.textContent = "Add a condition to see who matches."; return; }
      const url = root.dataset.draft || root.dataset.preview;
      const response = await fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ conditions: tree }),
      });
      const body = await response.json();
      preview.className = response.ok ? "" : "error";
      if (!response.ok) { preview.textContent = body.error; return; }
      let text = body.count.toLocaleString() + " customers match right now";
      if (root.dataset.draft) {
        // Test mode: the draft against the live membership; nothing changes until you save.
        text += " · " + body.would_enter.toLocaleString() + " would enter · " + body.would_exit.toLocaleString() + " would exit";
        const usedBy = document.getElementById("used-by");
        usedBy.hidden = !body.used_by.length;
        usedBy.textContent = body.used_by.length
          ? "In use by " + body.used_by.map(function (use) { return use.kind + " “" + use.name + "”"; }).join(", ") + ": saving changes what they do."
          : "";
      }
      preview.textContent = text;
    }, 300);
  }
  function changed(rerender) {
    hidden.value = JSON.stringify(tree);
    if (rerender) render();
    schedulePreview();
  }
  function render() { root.replaceChildren(groupBox(tree, null)); }

  fetch(root.dataset.catalogue, { credentials: "same-origin" })
    .then(function (response) { return response.json(); })
    .then(function (data) { catalogue = data; render(); changed(false); });
})();
