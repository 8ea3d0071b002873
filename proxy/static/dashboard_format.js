/* distill-proxy dashboard: the formatting helpers every panel shares (dashboard.js,
   dashboard_tasks.js), loaded first. Cells are filled with textContent only: names in the
   tables (tasks, tags, labels) come from clients. */
"use strict";

window.distillFormat = (function () {
  const usd = (v) => {
    if (v == null) return "–";
    const a = Math.abs(v);
    const text = a >= 100 ? a.toFixed(0) : a >= 1 ? a.toFixed(2) : a >= 0.01 ? a.toFixed(4)
      : a === 0 ? "0" : a.toPrecision(3);
    return (v < 0 ? "-$" : "$") + text;
  };
  const pct = (v) => (v == null ? "–" : (100 * v).toFixed(1) + "%");
  const utc = (iso) => (iso ? Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z") : null);
  const scoreText = (v, n) => (v == null ? "–" : v.toFixed(3) + " (n=" + n + ")");

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  /* A table body's only row: "loading…", "no traffic yet", an error. */
  function message(body, text, columns) {
    body.textContent = "";
    const tr = document.createElement("tr");
    cell(tr, text).colSpan = columns;
    body.appendChild(tr);
  }

  return Object.freeze({ usd, pct, utc, scoreText, cell, message });
})();
