// sockscript's HTML report: draws the index, each scenario's sequence diagram, the payload
// inspector and the script from the JSON in #data. Everything from a peer or a script is
// untrusted: it reaches the page only through textContent and attribute values, never as markup.
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("data").textContent);
  var SVGNS = "http://www.w3.org/2000/svg";

  // Layout of the diagram, in pixels.
  var LANE_X0 = 24, HEAD_H = 54, ROW = 28, TOP = 18;
  // Lanes share the width the diagram has, each between LANE_MIN and LANE_MAX wide (wider
  // than the page, the diagram scrolls sideways).
  var LANE_MIN = 112, LANE_MAX = 170, LANE_W = LANE_MAX;
  // Time flows down in proportion: PX_PER_MS more per millisecond between steps up to
  // PROPORTIONAL_MS, then logarithmically up to IDLE_MS; a longer quiet time is an idle gap of
  // GAP_H, labelled with its length.
  var PX_PER_MS = 6, PROPORTIONAL_MS = 10, IDLE_MS = 200, GAP_H = 34;
  // Rows drawn above and below the visible part while scrolling.
  var OVERSCAN = 600;

  // ---- small DOM helpers (text only) ----
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  var STATUS_TEXT = { passed: "passed", failed: "failed", errored: "error", compile_error: "compile error" };
  function badge(status) { return el("span", "status " + status, STATUS_TEXT[status] || status); }

  function ms(x) {
    if (x >= 1000) return (x / 1000).toFixed(2) + " s";
    if (x >= 10) return Math.round(x) + " ms";
    return x.toFixed(x >= 1 ? 1 : 3) + " ms";
  }
  function us(x) { return ms(x / 1000); }
  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  // ---- payloads ----
  function bytesOf(ev) {
    if (!ev || !ev.data) return new Uint8Array(0);
    var bin = atob(ev.data), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  // Text as it decodes (invalid bytes as U+FFFD), control characters written as escapes
  // (\r, \x1b) so that nothing invisible hides in it; newlines kept unless `oneLine`.
  var ESC = { "\r": "\\r", "\t": "\\t", "\n": "\\n", "\u0000": "\\0" };
  function visibleText(bytes, oneLine) {
    var s = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
    var re = oneLine ? /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
      : /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
    return s.replace(re, function (c) {
      if (ESC[c]) return ESC[c];
      var h = c.charCodeAt(0).toString(16);
      return c.charCodeAt(0) < 0x100 ? "\\x" + (h.length < 2 ? "0" + h : h) : "\\u{" + h + "}";
    });
  }
  function hex2(b) { return (b < 16 ? "0" : "") + b.toString(16); }
  // The hexdump --trace prints: offset, 16 bytes in two groups of 8, the printable ASCII.
  function hexdump(bytes) {
    var lines = [];
    for (var off = 0; off < bytes.length; off += 16) {
      var row = bytes.subarray(off, off + 16), h = "", a = "";
      for (var i = 0; i < 16; i++) {
        if (i < row.length) { h += hex2(row[i]) + " "; a += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : "."; }
        else h += "   ";
        if (i === 7) h += " ";
      }
      var o = off.toString(16); while (o.length < 8) o = "0" + o;
      lines.push(o + "  " + h + " |" + a + "|");
    }
    return lines.join("\n");
  }
  function preview(ev, max) {
    return cut(visibleText(bytesOf(ev).subarray(0, max * 4), true), max);
  }
  function cut(text, n) { return text.length > n ? text.slice(0, n) + "\u2026" : text; }

  // ---- the sequence model (src/report/sequence.rs), as the page draws it ----
  // Lanes: {task, addr, role, outside}. Steps: {type: arrow|mark|failure, from, to, lane,
  // kind, at, events}; `at` in microseconds; `events` index the scenario's transcript, the
  // send (if any) first.
  var ROLE = { listener: "listener", end: "end", socket: "socket", peer: "peer", task: "task", script: "script" };
  function model(s) {
    var m = s.sequence;
    var lanes = m.lanes.map(function (l) {
      var what = l.transport ? l.transport + (l.conn !== null ? "#" + l.conn : "") : "";
      return { task: l.kind === "peer" ? "outside" : (l.task || (l.kind === "script" ? "script" : "")),
        addr: l.addr || "", role: [ROLE[l.kind] || l.kind, what].filter(Boolean).join(" \u00b7 "),
        outside: l.kind === "peer" };
    });
    var steps = m.steps.map(function (st) {
      var events = (st.event !== null ? [st.event] : []).concat(st.recv);
      var type = st.kind === "message" ? "arrow" : st.kind === "failure" ? "failure" : "mark";
      return { type: type, from: st.lane, to: st.to, lane: st.lane, kind: st.kind, at: st.at_us,
        received: st.received_at_us, len: st.len, events: events, label: "" };
    });
    return { lanes: lanes, steps: steps, failure: m.failure };
  }

  // y of each step: rows in time order, pushed apart in proportion to the time between them;
  // a quiet time too long for that is drawn as a labelled gap.
  function layout(steps) {
    var ys = new Float64Array(steps.length), gaps = [], y = TOP, last = null;
    for (var i = 0; i < steps.length; i++) {
      if (last !== null) {
        var dtMs = Math.max(0, steps[i].at - last) / 1000;
        if (dtMs > IDLE_MS) {
          gaps.push({ y: y + ROW / 2, ms: dtMs });
          y += ROW + GAP_H;
        } else if (dtMs > PROPORTIONAL_MS) {
          y += ROW + PROPORTIONAL_MS * PX_PER_MS * (1 + Math.log10(dtMs / PROPORTIONAL_MS) / 2);
        } else {
          y += ROW + dtMs * PX_PER_MS;
        }
      }
      ys[i] = y;
      last = steps[i].at;
    }
    return { ys: ys, gaps: gaps, height: y + ROW + TOP };
  }
  function firstAtOrBelow(ys, y) {
    var lo = 0, hi = ys.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (ys[mid] < y) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function laneX(i) { return LANE_X0 + i * LANE_W + LANE_W / 2; }

  // ---- state ----
  var current = { index: -1, selected: -1, view: null };
  var filter = "all";

  // ---- header and index ----
  function header() {
    var h = el("header", "top");
    h.appendChild(el("h1", null, "sockscript report"));
    var sm = DATA.summary;
    var parts = [plural(sm.total, "scenario", "scenarios"), sm.passed + " passed", sm.failed + " failed"];
    if (sm.errored) parts.push(sm.errored + " errored");
    if (sm.compile_errors) parts.push(plural(sm.compile_errors, "compile error", "compile errors"));
    parts.push(ms(sm.duration_ms));
    h.appendChild(el("div", "summary", parts.join(" \u00b7 ")));
    var notes = el("div", "notes");
    var lim = DATA.limits;
    if (lim.partial_payloads) {
      notes.textContent = plural(lim.partial_payloads, "payload is", "payloads are") + " shown in part (" +
        lim.partial_bytes + " bytes left out; each says so where it is shown): a transcript keeps whole " +
        "payloads up to --limit capture, a run keeps " + lim.run_payload_bytes + " bytes of them for this page, " +
        "and the page embeds at most " + lim.payload_bytes + " bytes of each and " + lim.report_payload_bytes +
        " in all.";
    }
    h.appendChild(notes);
    var f = el("div", "filters");
    f.setAttribute("role", "group");
    var choices = [["all", "all", sm.total], ["passed", "passed", sm.passed], ["failed", "failed", sm.failed],
      ["errored", "errored", sm.errored], ["compile_error", "compile errors", sm.compile_errors]];
    choices.forEach(function (c) {
      if (c[0] !== "all" && c[0] !== "passed" && !c[2]) return;
      var b = el("button", null, c[1] + " (" + c[2] + ")");
      b.dataset.filter = c[0];
      b.setAttribute("aria-pressed", String(c[0] === filter));
      b.addEventListener("click", function () { setFilter(c[0]); });
      f.appendChild(b);
    });
    h.appendChild(f);
    return h;
  }

  function setFilter(status) {
    filter = status;
    document.querySelectorAll(".filters button").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.filter === status));
    });
    document.querySelectorAll("table.index tbody tr").forEach(function (tr) {
      tr.hidden = !(status === "all" || tr.dataset.status === status);
    });
  }

  function index() {
    var wrap = el("div", "index-wrap" + (DATA.scenarios.length === 1 ? " single" : ""));
    var t = el("table", "index"), thead = el("thead"), tr = el("tr");
    [["status"], ["scenario"], ["duration", "num"], ["connections", "num"], ["attempts", "num"]].forEach(function (c) {
      tr.appendChild(el("th", c[1], c[0]));
    });
    thead.appendChild(tr);
    t.appendChild(thead);
    var body = el("tbody");
    DATA.scenarios.forEach(function (s, i) {
      var row = el("tr");
      row.dataset.status = s.status;
      row.dataset.index = String(i);
      var st = el("td"); st.appendChild(badge(s.status)); row.appendChild(st);
      row.appendChild(el("td", "name", s.name));
      row.appendChild(el("td", "num", ms(s.duration_ms)));
      row.appendChild(el("td", "num", s.connections));
      row.appendChild(el("td", "num", s.attempts > 1 ? s.attempts + " (retried)" : s.attempts));
      row.addEventListener("click", function () { location.hash = "#s" + i; });
      body.appendChild(row);
    });
    t.appendChild(body);
    wrap.appendChild(t);
    return wrap;
  }

  // ---- one scenario ----
  function show(i) {
    var detail = document.getElementById("detail");
    clear(detail);
    current = { index: i, selected: -1, view: null };
    document.querySelectorAll("table.index tbody tr").forEach(function (tr) {
      tr.classList.toggle("current", tr.dataset.index === String(i));
    });
    var s = DATA.scenarios[i];
    if (!s) { detail.appendChild(el("p", "empty", "Choose a scenario above to see its conversation.")); return; }
    detail.dataset.scenario = String(i);
    var h = el("h2"); h.appendChild(badge(s.status)); h.appendChild(document.createTextNode(" " + s.name));
    detail.appendChild(h);
    var meta = [ms(s.duration_ms), plural(s.connections, "connection", "connections"),
      plural(s.attempts, "attempt", "attempts"), plural(s.events.length, "event", "events")];
    detail.appendChild(el("div", "meta", meta.join(" \u00b7 ")));
    var cut = [];
    if (s.dropped.bytes || s.dropped.events) {
      cut.push("The transcript did not keep " + s.dropped.bytes + " payload bytes (past --limit capture; previews kept) and " +
        s.dropped.events + " events.");
    }
    var partial = s.events.filter(function (e) { return e.shown < e.len; }).length;
    if (partial) cut.push(plural(partial, "payload is", "payloads are") + " shown in part here; each says how much.");
    if (cut.length) detail.appendChild(el("div", "notes", cut.join(" ")));
    if (s.diagnostic) {
      var d = el("pre", "diag", s.diagnostic.rendered);
      d.id = "diagnostic";
      detail.appendChild(d);
    }
    var cols = el("div", "cols"), left = el("div"), right = el("div");
    left.appendChild(el("h3", null, "Conversation"));
    var m = model(s);
    if (!m.steps.length) {
      left.appendChild(el("p", "empty", "Nothing crossed a socket in this scenario."));
    } else {
      left.appendChild(diagram(s, m));
    }
    left.appendChild(el("h3", null, "Script"));
    left.appendChild(source(s, m));
    if (s.stdout.len) {
      left.appendChild(el("h3", null, "Output"));
      left.appendChild(el("pre", "stdout", s.stdout.text));
      if (s.stdout.len > s.stdout.text.length) left.appendChild(el("div", "notes", "Output cut to its first " + s.stdout.text.length + " of " + s.stdout.len + " bytes."));
    }
    var insp = el("div", "inspector");
    insp.id = "inspector";
    insp.appendChild(el("p", "hint", "Click an arrow or a mark to see its payload, its times and the script line that made it."));
    right.appendChild(insp);
    cols.appendChild(left);
    cols.appendChild(right);
    detail.appendChild(cols);
    current.model = m;
    current.scenario = s;
    // A scenario that did not pass opens on its failure.
    if (m.failure !== null && m.failure !== undefined) select(m.failure, true);
  }

  function source(s, m) {
    var box = el("pre", "source");
    box.id = "source";
    var lines = s.source.text.split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    var hits = {};
    s.events.forEach(function (e) { if (e.line) hits[e.line] = (hits[e.line] || 0) + 1; });
    var failLine = s.diagnostic && s.diagnostic.line;
    var width = String(lines.length).length;
    lines.forEach(function (text, i) {
      var n = i + 1, ln = el("span", "ln");
      ln.dataset.line = String(n);
      if (hits[n]) { ln.classList.add("hit"); ln.title = plural(hits[n], "event", "events") + " from this line"; }
      if (n === failLine) ln.classList.add("fail");
      var no = String(n); while (no.length < width) no = " " + no;
      ln.appendChild(el("span", "no", no));
      ln.appendChild(document.createTextNode(text + "\n"));
      box.appendChild(ln);
    });
    if (!lines.length) box.appendChild(el("span", "empty", "(no script)"));
    if (s.source.len > s.source.text.length) box.appendChild(el("span", "empty", "\n(script cut to its first " + s.source.text.length + " of " + s.source.len + " bytes)"));
    return box;
  }

  // The diagram: sticky lane labels, and an SVG of only the rows near the visible part,
  // redrawn as it scrolls, so ten thousand exchanges cost what a screenful does.
  function diagram(s, m) {
    var lay = layout(m.steps);
    var room = (document.getElementById("detail").clientWidth || 1200) - 560;
    LANE_W = Math.max(LANE_MIN, Math.min(LANE_MAX, Math.floor((room - LANE_X0 - 40) / Math.max(1, m.lanes.length))));
    var width = LANE_X0 + m.lanes.length * LANE_W + 40;
    var wrap = el("div", "diagram");
    wrap.id = "diagram";
    wrap.dataset.lanes = String(m.lanes.length);
    wrap.dataset.steps = String(m.steps.length);
    wrap.dataset.arrows = String(m.steps.filter(function (x) { return x.type === "arrow"; }).length);
    var lanes = el("div", "lanes");
    lanes.style.width = width + "px";
    lanes.style.height = HEAD_H + "px";
    m.lanes.forEach(function (l, i) {
      var lab = el("div", "lane-label" + (l.outside ? " outside" : ""));
      lab.dataset.lane = String(i);
      lab.style.left = (LANE_X0 + i * LANE_W + 4) + "px";
      lab.style.width = (LANE_W - 8) + "px";
      lab.appendChild(el("div", "role", l.role));
      lab.appendChild(el("div", "task", l.task));
      lab.appendChild(el("div", "addr", l.addr));
      lab.title = [l.role, l.task, l.addr].filter(Boolean).join(" \u00b7 ");
      lanes.appendChild(lab);
    });
    var canvas = el("div", "canvas");
    canvas.style.width = width + "px";
    canvas.style.height = lay.height + "px";
    wrap.appendChild(lanes);
    wrap.appendChild(canvas);
    var view = { wrap: wrap, canvas: canvas, m: m, lay: lay, width: width, minWidth: width, from: -1, to: -1, s: s };
    current.view = view;
    var pending = false;
    wrap.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; drawWindow(view, false); });
    });
    // First drawn once the element is in the page and has a height.
    requestAnimationFrame(function () { drawWindow(view, true); });
    drawWindow(view, true);
    return wrap;
  }

  function drawWindow(view, force) {
    var wrap = view.wrap, lay = view.lay, m = view.m;
    var viewH = wrap.clientHeight || 600;
    var top = Math.max(0, wrap.scrollTop - HEAD_H - OVERSCAN), bottom = wrap.scrollTop + viewH + OVERSCAN;
    var from = firstAtOrBelow(lay.ys, top), to = firstAtOrBelow(lay.ys, bottom);
    if (!force && from === view.from && to === view.to) return;
    view.from = from; view.to = to;
    var old = view.canvas.querySelector("svg");
    if (old) view.canvas.removeChild(old);
    var y0 = top, h = Math.min(lay.height, bottom) - y0;
    // Room on the right for the labels of the last lane.
    view.width = Math.max(view.minWidth, wrap.clientWidth);
    var g = svg("svg", { width: view.width, height: Math.max(h, 1), viewBox: "0 " + y0 + " " + view.width + " " + Math.max(h, 1) });
    g.style.top = y0 + "px";
    var defs = svg("defs", {});
    defs.appendChild(arrowHead("head", "#0969da"));
    defs.appendChild(arrowHead("head-sel", "#953800"));
    defs.appendChild(arrowHead("head-fail", "#cf222e"));
    g.appendChild(defs);
    m.lanes.forEach(function (l, i) {
      g.appendChild(svg("line", { "class": "lifeline" + (l.outside ? " outside" : ""), x1: laneX(i), x2: laneX(i), y1: y0, y2: y0 + h }));
    });
    lay.gaps.forEach(function (gap) {
      if (gap.y + GAP_H < y0 || gap.y > y0 + h) return;
      var gg = svg("g", { "class": "gap" });
      gg.appendChild(svg("rect", { x: 0, y: gap.y + 4, width: view.width, height: GAP_H - 8 }));
      gg.appendChild(svg("text", { x: 8, y: gap.y + GAP_H / 2 + 4 }, "\u22ee " + ms(gap.ms) + " idle"));
      g.appendChild(gg);
    });
    for (var i = from; i < to; i++) g.appendChild(step(view, i));
    view.canvas.appendChild(g);
  }

  function arrowHead(id, color) {
    var mk = svg("marker", { id: id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 9, markerHeight: 9,
      markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" });
    mk.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: color }));
    return mk;
  }

  function step(view, i) {
    var st = view.m.steps[i], y = view.lay.ys[i], s = view.s;
    var sel = i === current.selected;
    var g, x = laneX(st.lane);
    if (st.type === "arrow") {
      var x2 = laneX(st.to), dir = x2 >= x ? 1 : -1;
      g = svg("g", { "class": "arrow" + (sel ? " selected" : ""), "data-step": i, "data-from": st.lane, "data-to": st.to });
      g.appendChild(svg("line", { "class": "shaft", x1: x + 4 * dir, y1: y, x2: x2 - 4 * dir, y2: y,
        "marker-end": "url(#" + (sel ? "head-sel" : "head") + ")" }));
      g.appendChild(svg("line", { "class": "hit", x1: x, y1: y, x2: x2, y2: y }));
      var ev = s.events[st.events[0]];
      var text = st.len + " B" + (ev && ev.shown ? "  " + preview(ev, 28) : "");
      g.appendChild(svg("text", { x: Math.min(x, x2) + 10, y: y - 5 }, text));
    } else if (st.type === "failure") {
      g = svg("g", { "class": "failure" + (sel ? " selected" : ""), "data-step": i, "data-lane": st.lane });
      var xf = x;
      if (st.to !== null && st.to !== undefined) {
        // A failed connect: a red arrow toward the address it could not reach.
        xf = laneX(st.to);
        var d = xf >= x ? 1 : -1;
        g.appendChild(svg("path", { d: "M" + (x + 4 * d) + "," + y + " L" + (xf - 12 * d) + "," + y }));
      }
      g.appendChild(svg("circle", { cx: xf, cy: y, r: 9 }));
      g.appendChild(svg("path", { d: "M" + (xf - 5) + "," + (y - 5) + " L" + (xf + 5) + "," + (y + 5) + " M" + (xf + 5) + "," + (y - 5) + " L" + (xf - 5) + "," + (y + 5) }));
      var msg = s.diagnostic ? s.diagnostic.message : "failed";
      g.appendChild(svg("text", { x: Math.max(x, xf) + 14, y: y + 4 }, cut(msg.split("\n")[0], 90)));
    } else {
      var isErr = st.kind === "error";
      g = svg("g", { "class": "mark " + st.kind + (sel ? " selected" : "") + (isErr ? " error" : ""), "data-step": i, "data-lane": st.lane });
      if (st.kind === "connect" && st.to !== null && st.to !== undefined) {
        var xl = laneX(st.to);
        g.appendChild(svg("line", { "class": "link", x1: x, y1: y, x2: xl, y2: y }));
      }
      if (st.kind === "close" || st.kind === "shutdown" || st.kind === "eof") {
        g.appendChild(svg("rect", { x: x - 6, y: y - 6, width: 12, height: 12 }));
      } else if (isErr) {
        g.appendChild(svg("path", { d: "M" + x + "," + (y - 8) + " L" + (x + 8) + "," + (y + 6) + " L" + (x - 8) + "," + (y + 6) + " z" }));
      } else {
        g.appendChild(svg("circle", { cx: x, cy: y, r: 6 }));
      }
      var ev2 = s.events[st.events[0]];
      var label = st.kind;
      if (isErr && ev2 && ev2.note) label = "error: " + ev2.note;
      g.appendChild(svg("text", { x: x + 10, y: y - 6 }, cut(label, 60)));
    }
    // Reachable from the keyboard too: Tab to a step, Enter or Space to inspect it.
    g.setAttribute("tabindex", "0");
    g.setAttribute("role", "button");
    g.addEventListener("click", function () { select(i); });
    g.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(i); }
    });
    return g;
  }

  // ---- the inspector ----
  function select(i, reveal) {
    var view = current.view, s = current.scenario;
    if (!view) return;
    current.selected = i;
    if (reveal) view.wrap.scrollTop = Math.max(0, view.lay.ys[i] - view.wrap.clientHeight / 2);
    var focused = document.activeElement && view.wrap.contains(document.activeElement);
    drawWindow(view, true);
    // The redraw made new elements: keep the keyboard where it was.
    var again = view.canvas.querySelector('g[data-step="' + i + '"]');
    if (focused && again) again.focus({ preventScroll: true });
    var st = view.m.steps[i], insp = document.getElementById("inspector");
    clear(insp);
    var evs = st.events.map(function (k) { return s.events[k]; }).filter(Boolean);
    var first = evs[0];
    insp.dataset.step = String(i);
    var title = st.type === "arrow" ? lane(view, st.from) + " \u2192 " + lane(view, st.to) : st.kind + " on " + lane(view, st.lane);
    insp.appendChild(el("h3", null, title));
    var dl = el("dl");
    function row(k, v) { dl.appendChild(el("dt", null, k)); dl.appendChild(el("dd", null, v)); }
    evs.forEach(function (e) {
      row(e.kind, "at " + us(e.at_us) + " by " + e.task + (e.line ? ", line " + e.line + ":" + e.column : ""));
    });
    if (st.type === "arrow") {
      row("length", st.len + " bytes");
      if (st.received !== null && st.received !== undefined) row("received", "all of it by " + us(st.received));
      else if (st.events.length && s.events[st.events[0]].kind === "send") row("received", "not (all) in this scenario");
    }
    if (first && first.transport) row("transport", first.transport + (first.conn !== null && first.conn !== undefined ? " (connection " + first.conn + ")" : ""));
    if (first && first.local) row("local", first.local);
    if (first && first.peer) row("peer", first.peer);
    var note = evs.map(function (e) { return e.note; }).filter(Boolean)[0];
    if (note) row("note", note);
    var payload = evs.filter(function (e) { return e.kind === "send" || e.kind === "recv"; })[0];
    insp.appendChild(dl);
    if (st.type === "failure" && s.diagnostic) {
      insp.appendChild(el("h3", null, "Failure"));
      insp.appendChild(el("p", "failure-message", s.diagnostic.message));
      insp.appendChild(el("p", "hint", "The whole diagnostic, as the terminal shows it, is above the diagram."));
    }
    if (payload) {
      var bytes = bytesOf(payload);
      insp.appendChild(el("h3", null, "Text"));
      var text = el("pre", "payload-text", visibleText(bytes));
      insp.appendChild(text);
      insp.appendChild(el("h3", null, "Hexdump"));
      insp.appendChild(el("pre", "hexdump", hexdump(bytes)));
      if (payload.shown < payload.len) {
        var why = payload.kept < payload.len ? " (the run kept " + payload.kept + ": past --limit capture, or past what a run keeps for this page)" : "";
        insp.appendChild(el("div", "cut", "Shown: the first " + payload.shown + " of " + payload.len + " bytes" + why + "."));
      }
    }
    // The script lines that made it.
    var lines = {};
    evs.forEach(function (e) { if (e.line) lines[e.line] = true; });
    document.querySelectorAll("#source .ln.sel").forEach(function (n) { n.classList.remove("sel"); });
    var firstLine = null;
    Object.keys(lines).forEach(function (n) {
      var ln = document.querySelector('#source .ln[data-line="' + Number(n) + '"]');
      if (ln) { ln.classList.add("sel"); if (!firstLine) firstLine = ln; }
    });
    if (firstLine) {
      var box = document.getElementById("source");
      box.scrollTop = Math.max(0, firstLine.offsetTop - box.clientHeight / 3);
    }
  }

  function lane(view, i) {
    var l = view.m.lanes[i];
    if (!l) return "?";
    return [l.task, l.addr].filter(Boolean).join(" ") || l.role;
  }

  // ---- start ----
  function route() {
    var m = /^#s(\d+)$/.exec(location.hash), i;
    if (m) i = Number(m[1]);
    else if (DATA.scenarios.length === 1) i = 0;
    else {
      i = -1;
      for (var k = 0; k < DATA.scenarios.length; k++) if (DATA.scenarios[k].status !== "passed") { i = k; break; }
    }
    show(i);
  }

  document.body.appendChild(header());
  var main = el("main");
  main.appendChild(index());
  var detail = el("section");
  detail.id = "detail";
  main.appendChild(detail);
  document.body.appendChild(main);
  window.addEventListener("hashchange", route);
  route();
  // For tests and tools: which scenario is shown, and a way to select a step.
  window.sockscriptReport = { select: select, show: function (i) { location.hash = "#s" + i; }, data: DATA };
})();
