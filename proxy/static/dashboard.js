/* distill-proxy dashboard: fetches /admin/dashboard/data and draws it with Chart.js
   (vendored under /dashboard/static/vendor, so the page works offline). The per-task table
   is dashboard_tasks.js; the shared formatting helpers are dashboard_format.js. */
"use strict";

(function () {
  const REFRESH_MS = 15000;
  const COLORS = { spent: "#b42318", saved: "#15803d", teacher: "#f79009", student: "#2563eb",
    p50: "#93c5fd", p95: "#2563eb", p99: "#1e3a8a", marker: "#7c3aed", threshold: "#b42318" };
  const state = { charts: {}, status: "loading", lastAction: null, data: null };
  window.distillDashboard = state;

  const $ = (id) => document.getElementById(id);
  const { usd, pct, utc, scoreText, cell } = window.distillFormat;
  const timeLabel = (ms) => {
    const d = new Date(ms);
    const span = state.data ? state.data.bucket_seconds : 60;
    if (span >= 3600 * 3) return d.toLocaleDateString() + " " + d.toLocaleTimeString([], { hour: "2-digit" });
    if (span < 60) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  };

  /* Vertical lines with labels: student versions on time axes, the threshold on the histogram. */
  const markerPlugin = {
    id: "markers",
    afterDatasetsDraw(chart, _args, opts) {
      const lines = (opts && opts.lines) || [];
      const { ctx, chartArea, scales } = chart;
      if (!scales.x) return;
      ctx.save();
      for (const m of lines) {
        const px = scales.x.getPixelForValue(m.x);
        if (!(px >= chartArea.left && px <= chartArea.right)) continue;
        ctx.strokeStyle = m.color || COLORS.marker;
        ctx.setLineDash(m.dash || [4, 3]);
        ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.moveTo(px, chartArea.top); ctx.lineTo(px, chartArea.bottom); ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = m.color || COLORS.marker;
        ctx.font = "11px system-ui, sans-serif";
        ctx.fillText(m.label, Math.min(px + 3, chartArea.right - 60), chartArea.top + 10);
      }
      ctx.restore();
    },
  };

  /* x range: the buckets that have data, padded by one bucket when there is only one. */
  function timeAxis() {
    const series = (state.data && state.data.timeseries) || [];
    const bucket = 1000 * ((state.data && state.data.bucket_seconds) || 60);
    const axis = { type: "linear", ticks: { maxTicksLimit: 8, callback: (v) => timeLabel(v) } };
    if (series.length) {
      const first = series[0].t * 1000, last = series[series.length - 1].t * 1000;
      axis.min = first === last ? first - bucket : first;
      axis.max = first === last ? last + bucket : last;
    }
    return axis;
  }

  function baseOptions(extra) {
    return Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "nearest", intersect: false },
      plugins: { legend: { position: "bottom" }, markers: { lines: [] } } }, extra);
  }

  function chart(id, config) {
    const old = state.charts[id];
    if (old) old.destroy();
    config.plugins = [markerPlugin];
    state.charts[id] = new Chart($(id), config);
    return state.charts[id];
  }

  function versionMarkers(versions) {
    return (versions || []).map((v) => ({ x: utc(v.activated_at || v.first_seen), label: v.name }))
      .filter((m) => m.x != null);
  }

  function drawCost(series, teacher) {
    let spent = 0, saved = 0;
    const spentPts = [], savedPts = [];
    for (const b of series) {
      spent += b.cost_usd; saved += b.counterfactual_cost_usd - b.cost_usd;
      spentPts.push({ x: b.t * 1000, y: spent }); savedPts.push({ x: b.t * 1000, y: saved });
    }
    /* Without a teacher nothing is saved: the answers it would have given were served degraded. */
    const datasets = teacher ? [{ label: "saved", data: savedPts, borderColor: COLORS.saved,
      backgroundColor: COLORS.saved + "33", fill: true, pointRadius: 2 }] : [];
    datasets.push({ label: "spent", data: spentPts, borderColor: COLORS.spent, pointRadius: 2 });
    chart("chart-cost", { type: "line", data: { datasets }, options: baseOptions({ scales: { x: timeAxis(),
      y: { beginAtZero: true, ticks: { callback: (v) => usd(v) } } } }) });
  }

  function drawFallback(series, versions) {
    const pts = series.map((b) => ({ x: b.t * 1000, y: b.fallback_rate == null ? null : 100 * b.fallback_rate }));
    const opts = baseOptions({ scales: { x: timeAxis(), y: { min: 0, max: 100, title: { display: true, text: "%" } } } });
    opts.plugins.markers.lines = versionMarkers(versions);
    chart("chart-fallback", { type: "line", data: { datasets: [
      { label: "fallback rate %", data: pts, borderColor: COLORS.teacher, spanGaps: true, pointRadius: 2 },
    ] }, options: opts });
  }

  function drawAgreement(series, versions) {
    const pick = (key) => series.map((b) => ({ x: b.t * 1000, y: b[key] == null ? null : 100 * b[key] }));
    const opts = baseOptions({ scales: { x: timeAxis(), y: { min: 0, max: 100, title: { display: true, text: "%" } } } });
    opts.plugins.markers.lines = versionMarkers(versions);
    chart("chart-agreement", { type: "line", data: { datasets: [
      { label: "served answers (shadow pairs)", data: pick("shadow_agreement"), borderColor: COLORS.student, spanGaps: true, pointRadius: 3 },
      { label: "all pairs", data: pick("all_agreement"), borderColor: "#98a2b3", spanGaps: true, pointRadius: 2, borderDash: [4, 3] },
    ] }, options: opts });
  }

  function drawLatency(rows) {
    const labels = rows.map((r) => r.route);
    const ds = (key, label, color) => ({ label, data: rows.map((r) => r[key]), backgroundColor: color });
    chart("chart-latency", { type: "bar", data: { labels, datasets: [
      ds("p50_ms", "p50", COLORS.p50), ds("p95_ms", "p95", COLORS.p95), ds("p99_ms", "p99", COLORS.p99),
    ] }, options: baseOptions({ scales: { y: { beginAtZero: true } } }) });
  }

  function drawConfidence(hist, threshold) {
    const e = hist.edges || [];
    const centers = e.slice(0, -1).map((v, i) => (v + e[i + 1]) / 2);
    const pts = (counts) => centers.map((x, i) => ({ x, y: counts[i] }));
    const opts = baseOptions({ scales: {
      x: { type: "linear", stacked: true, offset: false, title: { display: true, text: hist.scorer || "score" } },
      y: { stacked: true, beginAtZero: true } } });
    if (threshold != null) opts.plugins.markers.lines = [{ x: threshold, label: "threshold " + threshold.toFixed(2), color: COLORS.threshold, dash: [] }];
    chart("chart-confidence", { type: "bar", data: { datasets: [
      { label: "served by the student", data: pts(hist.served || []), backgroundColor: COLORS.student, barPercentage: 1, categoryPercentage: 1 },
      { label: "sent to the teacher", data: pts(hist.fallback || []), backgroundColor: COLORS.teacher, barPercentage: 1, categoryPercentage: 1 },
    ] }, options: opts });
  }

  function metricsText(m) {
    if (!m || typeof m !== "object") return "";
    return Object.entries(m).filter(([, v]) => typeof v === "number").slice(0, 5)
      .map(([k, v]) => k + "=" + (Number.isInteger(v) ? v : v.toFixed(3))).join("  ");
  }

  function drawRuns(runs, versions) {
    const body = $("runs-body");
    body.textContent = "";
    const promoted = new Map((versions || []).filter((v) => v.run_id).map((v) => [v.run_id, v.name]));
    if (!runs.length) {
      const tr = document.createElement("tr"); cell(tr, "no runs yet"); tr.firstChild.colSpan = 7;
      body.appendChild(tr); return;
    }
    for (const r of runs) {
      const tr = document.createElement("tr");
      cell(tr, r.id); cell(tr, r.status, "status-" + r.status); cell(tr, r.trigger);
      cell(tr, r.created_at ? new Date(utc(r.created_at)).toLocaleString() : "");
      cell(tr, r.finished_at ? new Date(utc(r.finished_at)).toLocaleString() : "");
      cell(tr, metricsText(r.metrics_json), "metrics");
      cell(tr, promoted.has(r.id) ? "promoted as " + promoted.get(r.id) : r.reason || "");
      body.appendChild(tr);
    }
  }

  function accText(a) {
    if (!a || a.accuracy == null) return "–";
    return a.accuracy.toFixed(3) + " [" + a.low.toFixed(2) + ", " + a.high.toFixed(2) + "] (n=" + a.n + ")";
  }

  function drawGold(fb) {
    $("gold-summary").textContent = fb && (fb.gold_rows || fb.rated_bad)
      ? "users' feedback: " + fb.gold_rows + " gold rows, " + fb.rated_bad + " rated bad · accuracy on gold rows: student "
        + accText(fb.student_gold_accuracy) + ", teacher " + accText(fb.teacher_gold_accuracy)
      : "no feedback yet (POST /v1/feedback)";
  }

  // Not part of load()'s readiness: a slow or failing breakdown must not hide the rest.
  async function loadWeak(since) {
    const body = $("weak-body");
    try {
      // Closed-set tasks read best per label, open-ended ones per tag (x-distill-tag).
      const by = $("weak-by").value;
      $("weak-name").textContent = by;
      const res = await fetch("/admin/breakdown?by=" + by + "&since=" + encodeURIComponent(since), { credentials: "same-origin" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const b = await res.json();
      body.textContent = "";
      for (const g of b.groups.slice(0, 15)) {
        const tr = document.createElement("tr");
        cell(tr, g.name); cell(tr, g.requests); cell(tr, pct(g.student_share));
        cell(tr, scoreText(g.agreement, g.agreement_n)); cell(tr, scoreText(g.gold_accuracy, g.gold_n));
        cell(tr, scoreText(g.teacher_gold_accuracy, g.teacher_gold_n));
        body.appendChild(tr);
      }
      if (!b.groups.length) {
        const tr = document.createElement("tr"); cell(tr, "no traffic yet"); tr.firstChild.colSpan = 6;
        body.appendChild(tr);
      }
      const never = b.never_served || [];
      $("never-served").textContent = never.length
        ? "never served by the student: " + never.slice(0, 20).join(", ") + (never.length > 20 ? ", …" : "") : "";
    } catch (err) {
      body.textContent = "";
      $("never-served").textContent = "Could not load the breakdown: " + err.message;
    }
  }

  function drawKpis(d) {
    const s = d.summary;
    $("k-requests").textContent = s.requests;
    const noTeacher = d.teacher_configured === false;
    $("k-fallback").textContent = noTeacher ? "no teacher" : pct(s.fallback_rate);
    $("k-degraded").textContent = s.degraded == null ? "–"
      : s.degraded + (s.requests ? " (" + pct(s.degraded / s.requests) + ")" : "");
    $("k-cost").textContent = usd(s.cost_usd);
    $("k-counterfactual").textContent = usd(s.counterfactual_cost_usd);
    $("k-savings").textContent = noTeacher ? "no teacher"
      : usd(s.savings_usd) + (s.savings_pct == null ? "" : " (" + s.savings_pct.toFixed(1) + "%)");
    $("k-errors").textContent = s.errors;
    $("version").textContent = d.student_version || "–";
    $("threshold").textContent = d.threshold == null ? "uncalibrated" : d.threshold.toFixed(3);
    $("scorer").textContent = d.scorer || "–";
    const cal = d.calibration;
    $("calibration").textContent = cal ? "calibration: " + cal.summary : "";
    $("queue").textContent = d.log ? d.log.queue_depth + (d.log.dropped ? " (" + d.log.dropped + " dropped)" : "") : "–";
  }

  async function load() {
    const since = $("since").value;
    try {
      const res = await fetch("/admin/dashboard/data?since=" + encodeURIComponent(since), { credentials: "same-origin" });
      if (res.status === 401 || res.status === 403) { window.location.reload(); return; }
      if (!res.ok) throw new Error("HTTP " + res.status);
      const d = await res.json();
      state.data = d;
      drawKpis(d);
      drawCost(d.timeseries, d.teacher_configured !== false); drawFallback(d.timeseries, d.versions);
      drawAgreement(d.agreement, d.versions); drawLatency(d.latency);
      drawConfidence(d.confidence, d.threshold); drawRuns(d.runs, d.versions);
      drawGold(d.feedback); loadWeak(since);
      window.distillTasks.load(since, d.teacher_configured !== false);
      $("load-error").hidden = true;
      state.status = "ready";
    } catch (err) {
      $("load-error").textContent = "Could not load the data: " + err.message;
      $("load-error").hidden = false;
      state.status = "error";
    }
  }

  async function act(button, path, verb) {
    button.disabled = true;
    $("action-status").textContent = verb + "…";
    try {
      const res = await fetch(path, { method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-distill-csrf": "1" }, body: "{}" });
      const text = await res.text();
      let detail = text;
      try { const j = JSON.parse(text); detail = (j.error && j.error.message) || j.id || j.status || text; } catch (_e) { /* not JSON */ }
      state.lastAction = { path, status: res.status, body: text };
      $("action-status").textContent = (res.ok ? verb + ": done " : verb + " failed (HTTP " + res.status + "): ") + String(detail).slice(0, 200);
      await load();
    } catch (err) {
      $("action-status").textContent = verb + " failed: " + err.message;
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const wanted = new URLSearchParams(window.location.search).get("since");
    if (wanted && [...$("since").options].some((o) => o.value === wanted)) $("since").value = wanted;
    $("since").addEventListener("change", load);
    $("weak-by").addEventListener("change", () => loadWeak($("since").value));
    $("refresh").addEventListener("click", load);
    $("trigger-run").addEventListener("click", (e) => act(e.currentTarget, "/dashboard/api/runs", "Starting a run"));
    $("rollback").addEventListener("click", (e) => {
      if (window.confirm("Roll the student back to the previous version?")) act(e.currentTarget, "/dashboard/api/rollback", "Rolling back");
    });
    load();
    setInterval(load, REFRESH_MS);
  });
})();
