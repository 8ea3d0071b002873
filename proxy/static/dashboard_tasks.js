/* distill-proxy dashboard: the per-task table, from GET /admin/tasks (requests, student
   share, agreement, gold accuracy, savings, and the version serving each task with its
   threshold and calibration status). dashboard.js calls load() on every refresh.
   Task names come from clients (x-distill-task): they only ever go in as textContent. */
"use strict";

window.distillTasks = (function () {
  const { usd, pct, scoreText, cell, message } = window.distillFormat;
  const COLUMNS = 9;
  const MAX_ROWS = 30;
  const state = { status: "loading", data: null };

  function nameCell(tr, task) {
    const td = cell(tr, task.task == null ? "(none)" : task.task, "task-name");
    if (task.excluded) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "excluded";
      td.appendChild(document.createTextNode(" "));
      td.appendChild(badge);
    }
  }

  /* The serving columns: the per-task `serving` block, tolerant of missing keys (the
     shared version's block has `shared: true`; a task's own has none or false). */
  function servingCells(tr, task) {
    const s = task.serving || {};
    if (task.excluded || s.route === "teacher") {
      cell(tr, "teacher only"); cell(tr, "–"); cell(tr, s.status || "excluded");
      return;
    }
    cell(tr, s.version == null ? "–" : s.version + (s.shared ? " (shared)" : ""));
    cell(tr, typeof s.threshold === "number" ? s.threshold.toFixed(3) : "none");
    const target = typeof s.quality_target === "number" ? " · target " + s.quality_target : "";
    cell(tr, (s.status || "–") + target, "calibration-" + (s.status || "unknown"));
  }

  function row(task, teacher) {
    const tr = document.createElement("tr");
    if (task.excluded) tr.className = "excluded";
    nameCell(tr, task);
    cell(tr, task.requests);
    cell(tr, pct(task.student_share));
    cell(tr, scoreText(task.agreement, task.agreement_n));
    cell(tr, scoreText(task.gold_accuracy, task.gold_n));
    cell(tr, teacher ? usd(task.savings_usd) : "no teacher");
    servingCells(tr, task);
    return tr;
  }

  /* Not part of the dashboard's readiness: a slow or failing task table hides nothing else. */
  async function load(since, teacher) {
    const body = document.getElementById("tasks-body");
    const note = document.getElementById("tasks-note");
    try {
      const res = await fetch("/admin/tasks?since=" + encodeURIComponent(since), { credentials: "same-origin" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const report = await res.json();
      const tasks = Array.isArray(report.tasks) ? report.tasks : [];
      state.data = report;
      body.textContent = "";
      for (const task of tasks.slice(0, MAX_ROWS)) body.appendChild(row(task, teacher));
      if (!tasks.length) message(body, "no traffic yet", COLUMNS);
      note.textContent = tasks.length > MAX_ROWS
        ? "the " + MAX_ROWS + " busiest of " + tasks.length + " tasks (all: GET /admin/tasks, distill stats --by task)" : "";
      state.status = "ready";
    } catch (err) {
      message(body, "–", COLUMNS);
      note.textContent = "Could not load the tasks: " + err.message;
      state.status = "error";
    }
  }

  return { load, state };
})();
