// weir's live page: every pipeline with its state and last error, and per pipeline charts of
// its recent batches, refreshed from the read-only HTTP API (/pipelines and
// /pipelines/NAME/progress) without reloading the page. Plain JavaScript and uPlot; nothing
// leaves the machine.
(function () {
  "use strict";

  const REFRESH_MS = 1000;
  // Batches asked for when a pipeline is first shown; after that only newer ones are fetched
  // (`after=`), so an open page costs a few hundred bytes a second per pipeline.
  const FIRST = 60;
  // Charts span at most this much time, and keep at most this many batches.
  const SPAN_MS = 10 * 60 * 1000;
  const KEEP = 3000;
  const main = document.getElementById("main");
  const charts = new Map(); // "pipeline/metric" -> uPlot
  const history = new Map(); // pipeline -> progress entries, oldest first

  // The pipeline's recent progress: the first FIRST batches, then what is new since.
  async function progressOf(p) {
    let kept = history.get(p.name) || [];
    const newest = kept.length ? kept[kept.length - 1].batchId : null;
    // A state reset starts batch ids again: start over.
    if (newest !== null && p.last_batch && p.last_batch.batch_id < newest) kept = [];
    const base = "/pipelines/" + encodeURIComponent(p.name) + "/progress?";
    const url = kept.length ? base + "after=" + kept[kept.length - 1].batchId : base + "last=" + FIRST;
    const fresh = await getJSON(url);
    kept = kept.concat(fresh);
    if (kept.length) {
      const since = Date.parse(kept[kept.length - 1].timestamp) - SPAN_MS;
      kept = kept.filter((e) => Date.parse(e.timestamp) >= since).slice(-KEEP);
    }
    history.set(p.name, kept);
    return kept;
  }

  function text(tag, content, cls) {
    const el = document.createElement(tag);
    if (content !== undefined && content !== null) el.textContent = String(content);
    if (cls) el.className = cls;
    return el;
  }

  function count(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return "-";
    const abs = Math.abs(n);
    if (abs >= 1e9) return (n / 1e9).toFixed(1) + " G";
    if (abs >= 1e6) return (n / 1e6).toFixed(1) + " M";
    if (abs >= 1e4) return (n / 1e3).toFixed(1) + " k";
    return Number.isInteger(n) ? String(n) : n.toFixed(1);
  }

  function bytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function seconds(s) {
    if (s === null || s === undefined) return "-";
    if (Math.abs(s) < 120) return s.toFixed(1) + " s";
    if (Math.abs(s) < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response.json();
  }

  function stateOf(p) {
    let word = p.state;
    if (p.state === "running" && p.engine && p.engine.state !== "running") word += " (" + p.engine.state + ")";
    return word;
  }

  function lastError(p) {
    if (p.state === "failed") return p.message;
    if (p.state === "restarting") return p.reason;
    if (p.errors && p.errors.length) return p.errors[p.errors.length - 1].message;
    return "";
  }

  function watermarkLag(p) {
    const b = p.last_batch;
    if (!b || b.watermark_ms === null || b.watermark_ms === undefined) return null;
    return (Date.now() - b.watermark_ms) / 1000;
  }

  function stateGroups(b) {
    if (!b || !b.state_operators || !b.state_operators.length) return null;
    return b.state_operators.reduce((sum, s) => sum + s.num_rows_total, 0);
  }

  function pipelineLink(name) {
    const a = text("a", name);
    a.href = "#/pipeline/" + encodeURIComponent(name);
    return a;
  }

  // One row per pipeline; each cell names the field it shows (data-field), for tests and for
  // anyone reading the DOM.
  function overviewTable(status) {
    const table = text("table");
    table.id = "pipelines";
    const head = text("tr");
    for (const h of ["pipeline", "state", "batches", "rows in (last)", "rows/s in", "rows/s processed", "batch", "backlog", "watermark lag", "state groups", "last error"]) {
      head.appendChild(text("th", h, h === "pipeline" || h === "state" || h === "last error" ? "text" : ""));
    }
    table.appendChild(head);
    for (const p of status.pipelines) {
      const b = p.last_batch;
      const row = text("tr");
      row.dataset.pipeline = p.name;
      const cells = [
        ["name", null, "text"],
        ["state", stateOf(p), "text state-" + p.state],
        ["batches", p.batches, ""],
        ["rows-in", b ? b.num_input_rows : null, ""],
        ["input-rate", b ? count(b.input_rows_per_second) : "-", ""],
        ["processed-rate", b ? count(b.processed_rows_per_second) : "-", ""],
        ["batch-ms", b ? b.duration_ms.trigger_execution.toFixed(1) + " ms" : "-", ""],
        ["backlog", b && b.source_backlog ? count(b.source_backlog.amount) + " " + b.source_backlog.unit : "-", ""],
        ["watermark-lag", seconds(watermarkLag(p)), ""],
        ["state-groups", count(stateGroups(b)), ""],
        ["error", lastError(p), "error"],
      ];
      for (const [field, value, cls] of cells) {
        const td = text("td", field === "name" ? undefined : (value === null ? "-" : value), cls);
        td.dataset.field = field;
        if (field === "name") td.appendChild(pipelineLink(p.name));
        row.appendChild(td);
      }
      table.appendChild(row);
    }
    return table;
  }

  // The four series charted per pipeline, from Spark-style progress entries.
  const METRICS = [
    { key: "rates", title: "rows/s: input, processed", series: [
      { label: "input", stroke: "#1d3557", value: (p) => p.inputRowsPerSecond },
      { label: "processed", stroke: "#e76f51", value: (p) => p.processedRowsPerSecond },
    ] },
    { key: "duration", title: "batch duration (ms)", series: [
      { label: "ms", stroke: "#2a9d8f", value: (p) => p.durationMs.triggerExecution },
    ] },
    { key: "lag", title: "watermark lag (s)", series: [
      { label: "s", stroke: "#8d6a9f", value: (p) => p.eventTime && p.eventTime.watermark
        ? (Date.parse(p.timestamp) - Date.parse(p.eventTime.watermark)) / 1000 : null },
    ] },
    { key: "state", title: "state groups", series: [
      { label: "groups", stroke: "#f4a261", value: (p) => p.stateOperators.length
        ? p.stateOperators.reduce((s, o) => s + o.numRowsTotal, 0) : null },
    ] },
  ];

  function chartData(metric, progress) {
    const xs = progress.map((p) => Date.parse(p.timestamp) / 1000);
    return [xs].concat(metric.series.map((s) => progress.map((p) => s.value(p))));
  }

  function renderCharts(container, name, progress, width) {
    for (const metric of METRICS) {
      const id = name + "/" + metric.key;
      let box = container.querySelector('[data-chart="' + metric.key + '"]');
      if (!box) {
        box = text("div", undefined, "chart");
        box.dataset.chart = metric.key;
        box.appendChild(text("h3", metric.title));
        container.appendChild(box);
      }
      const data = chartData(metric, progress);
      let chart = charts.get(id);
      if (!chart || !box.contains(chart.root)) {
        chart = new uPlot({
          width: width,
          height: 140,
          legend: { show: false },
          axes: [{}, { size: 70 }],
          series: [{}].concat(metric.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, spanGaps: true }))),
        }, data, box);
        charts.set(id, chart);
      } else {
        chart.setData(data);
      }
      // Points actually drawn (a pipeline without a watermark has none to show for its lag).
      box.dataset.points = String(data[1].filter((v) => v !== null && v !== undefined).length);
    }
  }

  async function pipelineCard(p) {
    let card = document.querySelector('.card[data-pipeline="' + CSS.escape(p.name) + '"]');
    if (!card) {
      card = text("div", undefined, "card");
      card.dataset.pipeline = p.name;
      const h = text("h2");
      h.appendChild(pipelineLink(p.name));
      card.appendChild(h);
      card.appendChild(text("div", undefined, "charts"));
    }
    renderCharts(card.querySelector(".charts"), p.name, await progressOf(p), 260);
    return card;
  }

  async function renderOverview(status) {
    const table = overviewTable(status);
    const old = document.getElementById("pipelines");
    if (old) old.replaceWith(table); else { main.replaceChildren(table); }
    if (!status.pipelines.length) {
      if (!document.querySelector(".empty")) main.appendChild(text("p", "No pipelines: drop a pipeline file into the pipelines folder.", "empty"));
      return;
    }
    const names = new Set(status.pipelines.map((p) => p.name));
    for (const card of document.querySelectorAll(".card")) {
      if (!names.has(card.dataset.pipeline)) card.remove();
    }
    for (const name of history.keys()) if (!names.has(name)) history.delete(name);
    for (const p of status.pipelines) {
      const card = await pipelineCard(p);
      if (!card.isConnected) main.appendChild(card);
    }
  }

  function costsTable(costs) {
    const table = text("table");
    table.id = "plugin-costs";
    const head = text("tr");
    for (const h of ["stage", "plugin", "calls", "rows in", "rows out", "mean call", "CPU", "memory peak / limit", "failures"]) {
      head.appendChild(text("th", h, h === "stage" || h === "plugin" || h === "failures" ? "text" : ""));
    }
    table.appendChild(head);
    for (const c of costs) {
      const row = text("tr");
      const failures = Object.entries(c.failures || {}).map(([k, n]) => n + " " + k.split("_").join(" ")).join(", ") || "none";
      const cells = [
        [c.stage, "text"], [c.plugin, "text"], [c.calls, ""], [c.rows_in, ""], [c.rows_out, ""],
        [c.calls ? (c.call_seconds * 1000 / c.calls).toFixed(1) + " ms" : "-", ""],
        [c.cpu_seconds.toFixed(2) + " s", ""],
        [bytes(c.memory_high_water_bytes) + " / " + bytes(c.memory_limit_bytes), ""],
        [failures, "text"],
      ];
      for (const [value, cls] of cells) row.appendChild(text("td", value, cls));
      table.appendChild(row);
    }
    return table;
  }

  function batchesTable(progress) {
    const table = text("table");
    table.id = "recent-batches";
    const head = text("tr");
    for (const h of ["batch", "time", "rows in", "rows out", "duration", "watermark"]) head.appendChild(text("th", h));
    table.appendChild(head);
    for (const p of progress.slice(-20).reverse()) {
      const row = text("tr");
      for (const value of [p.batchId, p.timestamp.replace("T", " ").replace("Z", ""), p.numInputRows, p.sink.numOutputRows,
        p.durationMs.triggerExecution + " ms", p.eventTime.watermark || "-"]) {
        row.appendChild(text("td", value));
      }
      table.appendChild(row);
    }
    return table;
  }

  async function renderPipeline(name, status) {
    const p = status.pipelines.find((x) => x.name === name);
    if (!p) {
      main.replaceChildren(text("p", "No pipeline named " + name + ".", "empty"));
      return;
    }
    const [details, progress] = await Promise.all([
      getJSON("/pipelines/" + encodeURIComponent(name)),
      progressOf(p),
    ]);
    let page = document.getElementById("pipeline-page");
    if (!page || page.dataset.pipeline !== name) {
      page = text("div");
      page.id = "pipeline-page";
      page.dataset.pipeline = name;
      page.appendChild(text("h2", name));
      page.appendChild(text("p", "", "summary"));
      page.appendChild(text("div", undefined, "charts"));
      page.appendChild(text("h3", "plugin costs"));
      page.appendChild(text("div", undefined, "costs"));
      page.appendChild(text("h3", "recent batches"));
      page.appendChild(text("div", undefined, "batches"));
      main.replaceChildren(page);
    }
    const result = details.result || details;
    const onDisk = p.last_batch && p.last_batch.state_disk_bytes != null
      ? " · " + bytes(p.last_batch.state_disk_bytes) + " in the state store" : "";
    page.querySelector(".summary").textContent = stateOf(p) + " · " + p.batches + " batches · file " + p.file +
      onDisk + (lastError(p) ? " · last error: " + lastError(p) : "");
    renderCharts(page.querySelector(".charts"), name + "#page", progress, 460);
    const costs = result.plugin_costs || [];
    page.querySelector(".costs").replaceChildren(costs.length ? costsTable(costs) : text("p", "no plugins", "empty"));
    page.querySelector(".batches").replaceChildren(batchesTable(progress));
  }

  async function tick() {
    try {
      const status = await getJSON("/pipelines");
      const c = status.counts;
      document.getElementById("counts").textContent = c.running + " running" + (c.finished ? ", " + c.finished + " finished" : "") +
        (c.failed ? ", " + c.failed + " failed" : "") + (c.rejected ? ", " + c.rejected + " rejected" : "") +
        (c.waiting ? ", " + c.waiting + " waiting for plugins to compile" : "");
      const m = location.hash.match(/^#\/pipeline\/(.+)$/);
      if (m) await renderPipeline(decodeURIComponent(m[1]), status);
      else await renderOverview(status);
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    } catch (err) {
      document.getElementById("updated").textContent = "cannot reach weir: " + err.message;
    }
    setTimeout(tick, REFRESH_MS);
  }

  window.addEventListener("hashchange", () => { main.replaceChildren(); charts.clear(); });
  tick();
})();
