// Opens sockscript HTML reports in Debian's headless Chromium (Playwright over the DevTools
// protocol) and prints what a reader sees, as one JSON document on stdout, for
// tests/html_report.rs to check against the scenarios. It asserts nothing itself.
//
// Usage: node observe.mjs PLAN.json
// PLAN: {"pages": [{"file": "/abs/report.html", "scenario": 0, "click": true,
//                   "screenshot": "/abs/out.png" | null, "screenshot_after_click": false,
//                   "scroll": false, "filter": "failed" | null, "keyboard": false}]}
import { chromium } from "playwright-core";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// How many jumps the scroll test makes from the top of a diagram to its bottom.
const SCROLL_STOPS = 60;
const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const profile = mkdtempSync(join(tmpdir(), "sockscript-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  viewport: { width: 1280, height: 1000 },
  timeout: 60000,
});
const results = [];
try {
  for (const p of plan.pages) results.push(await observe(p));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ pages: results }, null, 1) + "\n");

async function observe(p) {
  const page = await context.newPage();
  const url = pathToFileURL(p.file).href + (p.scenario !== undefined ? "#s" + p.scenario : "");
  // Every request the page makes. The page itself is one (file://); anything else is a
  // request the report must not make.
  const requests = [];
  const errors = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  const t0 = Date.now();
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("#detail h2", { timeout: 30000 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const openMs = Date.now() - t0;
  const seen = await page.evaluate(() => {
    const all = (sel) => Array.from(document.querySelectorAll(sel));
    const d = document.getElementById("diagram");
    return {
      title: document.title,
      // Elements that would load something or run markup: the page makes none of them.
      loaders: document.querySelectorAll("img, iframe, object, embed, link, video, audio, source, script:not(#data)").length - 1,
      index_rows: all("table.index tbody tr").length,
      scenario: document.querySelector("#detail h2")?.textContent ?? null,
      lanes: all(".lane-label").map((l) => ({
        role: l.querySelector(".role").textContent,
        task: l.querySelector(".task").textContent,
        addr: l.querySelector(".addr").textContent,
      })),
      model: d ? { lanes: +d.dataset.lanes, steps: +d.dataset.steps, arrows: +d.dataset.arrows } : null,
      arrows: all("svg .arrow").length,
      arrow_labels: all("svg .arrow text").map((t) => t.textContent),
      arrow_lanes: all("svg .arrow").map((a) => [+a.dataset.from, +a.dataset.to]),
      marks: all("svg .mark").map((m) => m.getAttribute("class").replace(/^mark /, "").split(" ")[0]),
      failures: all("svg .failure").map((f) => ({
        lane: +f.dataset.lane,
        selected: f.classList.contains("selected"),
        text: f.querySelector("text")?.textContent ?? "",
        color: getComputedStyle(f.querySelector("circle")).stroke,
      })),
      gaps: all("svg .gap text").map((t) => t.textContent),
      diagnostic: document.getElementById("diagnostic")?.textContent ?? null,
      inspector_failure: document.querySelector("#inspector .failure-message")?.textContent ?? null,
      source_hits: all("#source .ln.hit").map((l) => +l.dataset.line),
      source_fail: all("#source .ln.fail").map((l) => +l.dataset.line),
      notes: all(".notes").map((n) => n.textContent),
    };
  });
  seen.open_ms = openMs;
  if (p.screenshot && !p.screenshot_after_click) {
    await page.screenshot({ path: p.screenshot, fullPage: false });
  }
  if (p.click && seen.arrows > 0) {
    // A real click, where a reader would put the mouse: the middle of the first arrow.
    const box = await page.evaluate(() => {
      const r = document.querySelector("svg .arrow line.hit").getBoundingClientRect();
      return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
    });
    await page.mouse.click(box.x, box.y);
    seen.clicked = await page.evaluate(() => {
      const insp = document.getElementById("inspector");
      const dl = {};
      const dts = insp.querySelectorAll("dt");
      insp.querySelectorAll("dd").forEach((dd, i) => { dl[dts[i].textContent] = dd.textContent; });
      return {
        title: insp.querySelector("h3")?.textContent ?? null,
        text: insp.querySelector(".payload-text")?.textContent ?? null,
        hexdump: insp.querySelector(".hexdump")?.textContent ?? null,
        fields: dl,
        selected_lines: Array.from(document.querySelectorAll("#source .ln.sel")).map((l) => +l.dataset.line),
        selected_arrows: document.querySelectorAll("svg .arrow.selected").length,
      };
    });
  }
  if (p.screenshot && p.screenshot_after_click) {
    await page.screenshot({ path: p.screenshot, fullPage: false });
  }
  if (p.keyboard && seen.arrows > 1) {
    // The second arrow from the keyboard: focus it, press Enter.
    await page.evaluate(() => document.querySelectorAll("svg .arrow")[1].focus());
    await page.keyboard.press("Enter");
    seen.keyboard = await page.evaluate(() => ({
      selected: Array.from(document.querySelectorAll("svg .arrow.selected")).map((a) => +a.dataset.step),
      second: +document.querySelectorAll("svg .arrow")[1].dataset.step,
      focused: document.activeElement?.dataset?.step !== undefined ? +document.activeElement.dataset.step : null,
      text: document.querySelector("#inspector .payload-text")?.textContent ?? null,
    }));
  }
  if (p.filter) {
    await page.click(`.filters button[data-filter="${p.filter}"]`);
    seen.filtered_rows = await page.evaluate(() =>
      Array.from(document.querySelectorAll("table.index tbody tr"))
        .filter((r) => r.offsetParent !== null)
        .map((r) => r.querySelector("td.name").textContent));
  }
  if (p.scroll) seen.scroll = await scroll(page);
  seen.requests = requests;
  seen.errors = errors;
  await page.close();
  return seen;
}

// Scroll the diagram from top to bottom in SCROLL_STOPS jumps, then a screenful at a time
// over its last part, as a reader would, and time each: the rows drawn must follow, their
// number must stay that of a screenful, and the last step must be drawn at the bottom.
async function scroll(page) {
  return page.evaluate(async (stops) => {
    const d = document.getElementById("diagram");
    const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
    let worst = 0, most = 0, n = 0;
    const t0 = performance.now();
    const go = async (top) => {
      const t = performance.now();
      d.scrollTop = top;
      await frame();
      await frame();
      worst = Math.max(worst, performance.now() - t);
      most = Math.max(most, document.querySelectorAll("#diagram svg g[data-step]").length);
      n++;
    };
    const end = d.scrollHeight - d.clientHeight;
    for (let i = 1; i <= stops; i++) await go((end * i) / stops);
    for (let i = 0; i < 20; i++) await go(end - (20 - i) * d.clientHeight);
    await go(end);
    const last = +d.dataset.steps - 1;
    return {
      moves: n,
      total_ms: performance.now() - t0,
      worst_frame_ms: worst,
      most_steps_drawn: most,
      last_step_drawn: !!document.querySelector('#diagram svg g[data-step="' + last + '"]'),
      height: d.scrollHeight,
    };
  }, SCROLL_STOPS);
}
