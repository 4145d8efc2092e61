// Plait's web UI: the progressive part. The pages are complete without this file; it adds
// the schematic (laid out by dagre), live states on the schematic and the Gantt (from the
// flow run's SSE stream, which htmx's SSE extension opens), folding of mapped children, and
// the log follow switch. No build step: plain browser JavaScript.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var FINISHED = { SUCCESS: 1, FAILED: 1, CANCELLED: 1 };

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function stateClass(type) {
    return "state-" + String(type || "none").toLowerCase();
  }

  function setStateClass(node, type) {
    var cls = node.getAttribute("class") || "";
    cls = cls.replace(/\bstate-[a-z_]+\b/g, "").trim();
    node.setAttribute("class", (cls + " " + stateClass(type)).trim());
  }

  function short(text, n) {
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  // --- the schematic -----------------------------------------------------------------------

  var schematicNodes = {}; // slug -> {g, sub, bar, data}
  // Laying out thousands of nodes takes the browser seconds and draws nothing readable.
  var MAX_SCHEMATIC_NODES = 1500;

  function drawSchematic(box) {
    var source = box.querySelector("script.schematic-data");
    if (!source || typeof dagre === "undefined") return;
    var data = JSON.parse(source.textContent);
    if (!data.nodes.length) return;
    if (data.nodes.length > MAX_SCHEMATIC_NODES) {
      var note = document.createElement("p");
      note.className = "muted";
      note.textContent = "This flow has " + data.nodes.length + " tasks: too many to draw (the limit is " +
        MAX_SCHEMATIC_NODES + "). Its tasks are listed below.";
      box.insertBefore(note, box.firstChild);
      return;
    }
    var g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 46, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(function () { return {}; });
    data.nodes.forEach(function (n) {
      var label = short(n.name, 30);
      var width = Math.max(n.mapped ? 150 : 70, Math.min(230, label.length * 7 + 24));
      var height = n.kind === "constant" ? 24 : n.mapped ? 44 : 34;
      g.setNode(n.slug, { width: width + (n.mapped ? 6 : 0), height: height, data: n, label: label });
    });
    data.edges.forEach(function (e) {
      if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to, { mapped: e.mapped });
    });
    dagre.layout(g);
    var size = g.graph();
    var svg = el("svg", { width: size.width, height: size.height, viewBox: "0 0 " + size.width + " " + size.height, role: "img", "aria-label": "flow schematic" });
    g.edges().forEach(function (e) {
      var edge = g.edge(e);
      var d = edge.points.map(function (p, i) { return (i ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1); }).join(" ");
      el("path", { d: d, class: "edge" + (edge.mapped ? " mapped" : ""), "marker-end": "url(#arrow)" }, svg);
    });
    var defs = el("defs", {}, svg);
    var marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#98a1b0" }, marker);
    g.nodes().forEach(function (slug) {
      var node = g.node(slug);
      var n = node.data;
      var x = node.x - node.width / 2, y = node.y - node.height / 2;
      var group = el("g", { class: "node " + n.kind + (n.mapped ? " mapped" : "") + (n.state_type ? " " + stateClass(n.state_type) : ""), "data-slug": slug }, svg);
      var title = el("title", {}, group);
      title.textContent = n.name + (n.mapped ? " (mapped)" : "") + (n.state ? ": " + n.state : "") + (n.tags && n.tags.length ? " [" + n.tags.join(", ") + "]" : "");
      var w = node.width - (n.mapped ? 6 : 0);
      if (n.mapped) {
        el("rect", { class: "stack", x: x + 6, y: y, width: w, height: node.height - 6, rx: 5 }, group);
        el("rect", { class: "stack", x: x + 3, y: y + 3, width: w, height: node.height - 6, rx: 5 }, group);
      }
      el("rect", { class: "box", x: x, y: y + (n.mapped ? 6 : 0), width: w, height: node.height - (n.mapped ? 6 : 0), rx: 5 }, group);
      var text = el("text", { x: x + w / 2, y: y + (n.mapped ? 22 : node.height / 2 + 4), "text-anchor": "middle" }, group);
      text.textContent = node.label;
      var sub = null, bar = null;
      if (n.mapped) {
        sub = el("text", { class: "sub", x: x + w / 2, y: y + 34, "text-anchor": "middle" }, group);
        sub.textContent = n.children ? "×" + n.children : "mapped";
        bar = el("g", { class: "countbar", "data-x": x + 8, "data-y": y + node.height - 7, "data-w": w - 16 }, group);
        drawCounts(bar, n.counts || {});
      }
      if (n.id) {
        group.style.cursor = "pointer";
        group.addEventListener("click", function () { window.location = "/task-runs/" + n.id; });
      }
      schematicNodes[slug] = { g: group, sub: sub, bar: bar, data: n };
    });
    var fallback = box.querySelector(".fallback");
    if (fallback) fallback.remove();
    box.appendChild(svg);
  }

  // A mapped node's children by state, as a thin stacked bar under its name.
  function drawCounts(bar, counts) {
    while (bar.firstChild) bar.firstChild.remove();
    var total = 0;
    Object.keys(counts).forEach(function (s) { total += counts[s]; });
    if (!total) return;
    var x = Number(bar.dataset.x), y = Number(bar.dataset.y), w = Number(bar.dataset.w);
    Object.keys(counts).sort().forEach(function (s) {
      var width = w * counts[s] / total;
      var rect = el("rect", { x: x.toFixed(1), y: y, width: Math.max(width, 0.5).toFixed(1), height: 4, class: "seg " + stateClass(typeOf(s)) }, bar);
      var title = el("title", {}, rect);
      title.textContent = s + " " + counts[s];
      x += width;
    });
  }

  // --- the Gantt ---------------------------------------------------------------------------

  function gantt() { return document.getElementById("gantt"); }

  function axis() {
    var box = gantt();
    var start = Number(box.dataset.start);
    var end = Number(box.dataset.end);
    if (box.dataset.live === "true") end = Math.max(end, Date.now());
    box.querySelectorAll(".row[data-end]").forEach(function (row) {
      var e = Number(row.dataset.end);
      if (e > end) end = e;
    });
    return [start, Math.max(end, start + 1)];
  }

  function place(row, span) {
    var s = Number(row.dataset.start);
    if (!s) return;
    var e = Number(row.dataset.end) || Date.now();
    var bar = row.querySelector(".bar");
    if (!bar) {
      bar = document.createElement("span");
      bar.className = "bar";
      row.querySelector(".track").appendChild(bar);
    }
    var total = span[1] - span[0];
    var left = Math.min(Math.max((s - span[0]) / total * 100, 0), 100);
    var right = Math.min(Math.max((e - span[0]) / total * 100, left), 100);
    bar.style.left = left.toFixed(3) + "%";
    bar.style.width = Math.max(right - left, 0.3).toFixed(3) + "%";
  }

  function rescale() {
    var box = gantt();
    if (!box) return;
    var span = axis();
    box.querySelectorAll(".row[data-start]").forEach(function (row) { place(row, span); });
    var to = box.querySelector(".row.axis .to");
    if (to && span[1] > span[0] + 1) to.textContent = "+" + formatDuration(span[1] - span[0]);
  }

  function formatDuration(ms) {
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function badge(state, type) {
    var b = document.createElement("span");
    b.className = "badge " + stateClass(type);
    b.dataset.stateType = type;
    b.textContent = state;
    return b;
  }

  function parentRow(slug, mapped) {
    var box = gantt();
    var row = box.querySelector('.row.parent[data-slug="' + CSS.escape(slug) + '"]');
    if (row) return row;
    var empty = box.querySelector("p.muted");
    if (empty) empty.remove();
    row = document.createElement("div");
    row.className = "row parent" + (mapped ? " mapped" : "");
    row.dataset.slug = slug;
    row.dataset.children = "0";
    row.innerHTML = '<div class="name"></div><div class="track"></div><div class="st"></div>';
    var name = schematicNodes[slug] ? schematicNodes[slug].data.name : slug;
    row.querySelector(".name").textContent = name;
    box.appendChild(row);
    return row;
  }

  function setText(row, slug, id) {
    var name = row.querySelector(".name");
    if (id && !name.querySelector("a:not(.fold)")) {
      var label = schematicNodes[slug] ? schematicNodes[slug].data.name : slug;
      var fold = name.querySelector(".fold");
      var count = name.querySelector(".count");
      name.textContent = "";
      if (fold) name.appendChild(fold);
      var a = document.createElement("a");
      a.href = "/task-runs/" + id;
      a.textContent = label;
      name.appendChild(a);
      if (count) name.appendChild(count);
    }
  }

  function applyTask(t) {
    var id = t[0], slug = t[1], index = t[2], state = t[3], type = t[4], start = t[5], end = t[6];
    if (index < 0) {
      var row = parentRow(slug, false);
      row.dataset.id = id;
      setText(row, slug, id);
      var mapped = Number(row.dataset.children) > 0 || row.classList.contains("mapped");
      if (!mapped) {
        if (start) row.dataset.start = start;
        row.dataset.end = end || "";
        var st = row.querySelector(".st");
        st.textContent = "";
        st.appendChild(badge(state, type));
        var bar = row.querySelector(".bar");
        if (bar) setStateClass(bar, type);
        else if (start) { place(row, axis()); setStateClass(row.querySelector(".bar"), type); }
      }
      var node = schematicNodes[slug];
      if (node) {
        setStateClass(node.g, type);
        node.data.id = id;
        var title = node.g.querySelector("title");
        if (title) title.textContent = node.data.name + ": " + state;
        if (!node.g.style.cursor) {
          node.g.style.cursor = "pointer";
          node.g.addEventListener("click", function () { window.location = "/task-runs/" + node.data.id; });
        }
      }
    } else {
      var parent = parentRow(slug, true);
      if (!parent.classList.contains("mapped")) parent.classList.add("mapped");
      if (start && (!Number(parent.dataset.start) || start < Number(parent.dataset.start))) parent.dataset.start = start;
      if (end && end > Number(parent.dataset.end || 0)) parent.dataset.end = end;
      var child = gantt().querySelector('.row.child[data-id="' + CSS.escape(id) + '"]');
      if (child) {
        if (start) child.dataset.start = start;
        child.dataset.end = end || "";
        var cst = child.querySelector(".st");
        cst.textContent = "";
        cst.appendChild(badge(state, type));
        if (!child.querySelector(".bar") && start) place(child, axis());
        var cbar = child.querySelector(".bar");
        if (cbar) setStateClass(cbar, type);
      }
    }
  }

  var TYPES = window.PLAIT_STATE_TYPES || {};

  function applyCounts(counts) {
    Object.keys(counts).forEach(function (slug) {
      var c = counts[slug];
      var total = 0;
      Object.keys(c).forEach(function (s) { total += c[s]; });
      var row = parentRow(slug, true);
      row.classList.add("mapped");
      row.dataset.children = String(total);
      var st = row.querySelector(".st");
      st.textContent = "";
      var wrap = document.createElement("span");
      wrap.className = "counts";
      Object.keys(c).sort(function (a, b) { return c[b] - c[a]; }).forEach(function (s) {
        var b = badge(s + " " + c[s], typeOf(s));
        b.dataset.countState = s;
        wrap.appendChild(b);
        wrap.appendChild(document.createTextNode(" "));
      });
      st.appendChild(wrap);
      var bar = row.querySelector(".bar");
      if (!bar && Number(row.dataset.start)) { place(row, axis()); bar = row.querySelector(".bar"); }
      if (bar) {
        bar.className = "bar";
        bar.textContent = "";
        var cb = document.createElement("span");
        cb.className = "countbar";
        Object.keys(c).forEach(function (s) {
          var seg = document.createElement("span");
          seg.className = "seg " + stateClass(typeOf(s));
          seg.style.width = (100 * c[s] / (total || 1)).toFixed(2) + "%";
          cb.appendChild(seg);
        });
        bar.appendChild(cb);
      }
      ensureFold(row, slug);
      var count = row.querySelector(".name .count");
      if (count) count.textContent = "×" + total;
      var node = schematicNodes[slug];
      if (node && node.sub) node.sub.textContent = "×" + total;
      if (node && node.bar) drawCounts(node.bar, c);
    });
  }

  // A task that became mapped while the page was open gets its fold arrow and children box.
  var liveFolds = 0;
  function ensureFold(row, slug) {
    var name = row.querySelector(".name");
    if (name.querySelector(".fold")) return;
    var live = document.getElementById("live");
    if (!live) return;
    var url = "/flow-runs/" + live.dataset.runId + "/tasks/" + encodeURIComponent(slug) + "/children";
    var box = document.createElement("div");
    box.className = "children";
    box.id = "children-live-" + (++liveFolds);
    box.dataset.slug = slug;
    box.hidden = true;
    row.parentNode.insertBefore(box, row.nextSibling);
    var fold = document.createElement("a");
    fold.className = "fold";
    fold.href = "/flow-runs/" + live.dataset.runId + "?open=" + encodeURIComponent(slug) + "#gantt";
    fold.dataset.url = url;
    fold.setAttribute("aria-expanded", "false");
    fold.setAttribute("aria-controls", box.id);
    fold.textContent = "▸";
    name.insertBefore(fold, name.firstChild);
    var count = document.createElement("span");
    count.className = "muted count";
    name.appendChild(document.createTextNode(" "));
    name.appendChild(count);
  }

  function typeOf(state) {
    var known = {
      Pending: "PENDING", Paused: "PAUSED", Scheduled: "SCHEDULED", Retrying: "SCHEDULED", Queued: "SCHEDULED",
      Submitted: "SUBMITTED", Running: "RUNNING", Looped: "RUNNING", Cancelling: "CANCELLING",
      Success: "SUCCESS", Cached: "SUCCESS", Skipped: "SUCCESS", Mapped: "SUCCESS",
      Failed: "FAILED", TriggerFailed: "FAILED", TimedOut: "FAILED", Cancelled: "CANCELLED"
    };
    return TYPES[state] || known[state] || "PENDING";
  }

  function applyStates(payload) {
    if (payload.run) {
      var box = gantt();
      if (box) {
        if (payload.run.start && !Number(box.dataset.start)) box.dataset.start = payload.run.start;
        if (payload.run.start) box.dataset.start = payload.run.start;
        box.dataset.live = FINISHED[payload.run.state_type] ? "false" : "true";
        if (payload.run.end) box.dataset.end = payload.run.end;
      }
      document.body.dataset.runState = payload.run.state_type;
    }
    (payload.tasks || []).forEach(applyTask);
    if (payload.counts) applyCounts(payload.counts);
    rescale();
    // For benchmarks and tests: when the page last applied a live update, and how many.
    window.plaitLive = { applied: ((window.plaitLive || {}).applied || 0) + 1, at: Date.now() };
  }

  // --- folding mapped children ---------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var fold = event.target.closest && event.target.closest("a.fold");
    if (!fold || typeof htmx === "undefined") return;
    event.preventDefault();
    var box = document.getElementById(fold.getAttribute("aria-controls"));
    if (!box) return;
    var open = fold.getAttribute("aria-expanded") === "true";
    if (open) {
      box.hidden = true;
      fold.setAttribute("aria-expanded", "false");
      fold.textContent = "▸";
      return;
    }
    box.hidden = false;
    fold.setAttribute("aria-expanded", "true");
    fold.textContent = "▾";
    if (!box.children.length) {
      htmx.ajax("GET", fold.dataset.url, { target: box, swap: "innerHTML" }).then(rescale);
    }
  });

  // --- logs: de-duplicate (a stream that reconnects may send a line again), follow -------------

  var lastLogId = 0;

  function noteLogs(container) {
    var rows = container.querySelectorAll("tr[data-id]");
    rows.forEach(function (row) {
      var id = Number(row.dataset.id);
      if (row.parentNode.id === "log-live" && id <= lastLogId) row.remove();
      else if (id > lastLogId) lastLogId = id;
    });
    var live = document.getElementById("log-live");
    if (live && live.children.length > 5000) {
      for (var i = live.children.length - 5000; i > 0; i--) live.firstElementChild.remove();
    }
    var none = document.getElementById("no-logs");
    if (none && rows.length) none.remove();
    var follow = document.getElementById("follow");
    var logbox = document.getElementById("logbox");
    if (follow && follow.checked && logbox) logbox.scrollTop = logbox.scrollHeight;
  }

  document.addEventListener("htmx:sseMessage", function (event) {
    var target = event.target;
    if (target.id === "live-states") {
      try { applyStates(JSON.parse(event.detail.data)); } catch (e) { console.error("plait: live states", e); }
    } else if (target.id === "log-live") {
      noteLogs(document);
    }
  });

  // --- start ---------------------------------------------------------------------------------

  function start() {
    document.querySelectorAll("[data-schematic]").forEach(drawSchematic);
    if (gantt()) {
      rescale();
      setInterval(function () { if (gantt().dataset.live === "true") rescale(); }, 1000);
    }
    var lines = document.getElementById("log-lines");
    if (lines) noteLogs(document);
    document.body.dataset.ready = "true";
    if (window.performance && performance.mark) performance.mark("plait:ready");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
