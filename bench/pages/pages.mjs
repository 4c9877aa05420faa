// Page weight and time to interactive, in Chromium (`scripts/bench.sh pages`).
//
// For each page a person opens (home, sign-in, meetings, a meeting, the
// lobby, the call): the bytes on the wire as served (compressed), split
// into HTML, wasm, JS, CSS and the rest, on a first visit (empty cache)
// and on a repeat visit in the same browser; and the time from the start
// of navigation to the page being interactive (hydrated), median of the
// runs. The repeat visit is the baseline beside it: what caching saves.
//
// Usage: node bench/pages/pages.mjs MOIM_BINARY SITE_ROOT [runs]

import { PASSWORD, launchChromium, startMoim } from "../browser.mjs";

const [moim, siteRoot, runsArg] = process.argv.slice(2);
if (!moim || !siteRoot) {
  console.error("usage: node bench/pages/pages.mjs MOIM_BINARY SITE_ROOT [runs]");
  process.exit(2);
}
const RUNS = Number(runsArg ?? 5);

function kindOf(type, url) {
  if (type === "Document") return "html";
  if (url.endsWith(".wasm")) return "wasm";
  if (type === "Script" || url.endsWith(".js")) return "js";
  if (type === "Stylesheet" || url.endsWith(".css")) return "css";
  return "other";
}

/** Opens `path` in `page`, counting the bytes every response took on the wire. */
async function visit(page, base, path) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  const requests = new Map();
  const bytes = { html: 0, wasm: 0, js: 0, css: 0, other: 0 };
  cdp.on("Network.responseReceived", (e) => requests.set(e.requestId, kindOf(e.type, e.response.url)));
  cdp.on("Network.loadingFinished", (e) => {
    const kind = requests.get(e.requestId);
    if (kind) bytes[kind] += e.encodedDataLength;
  });
  const started = Date.now();
  await page.goto(`${base}${path}`);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60_000 });
  const hydratedMs = Date.now() - started;
  // Late responses (the wasm finishes before hydration; nothing big after).
  await page.waitForTimeout(200);
  await cdp.detach();
  return { bytes, hydratedMs };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const kb = (n) => (n / 1024).toFixed(1);

const server = await startMoim(moim, siteRoot);
const browser = await launchChromium();
try {
  // One account and one meeting open now, for the signed-in pages.
  const setup = await browser.newContext();
  const setupPage = await setup.newPage();
  const username = `bench${Date.now().toString(36)}`;
  await setupPage.goto(`${server.base}/signup?next=/meetings`);
  await setupPage.waitForSelector('body[data-hydrated="true"]');
  await setupPage.getByLabel("Username").fill(username);
  await setupPage.getByLabel("Display name").fill("Bench");
  await setupPage.getByLabel("Password").fill(PASSWORD);
  await setupPage.getByRole("button", { name: "Create account" }).click();
  await setupPage.waitForURL((url) => url.pathname === "/meetings");
  await setupPage.goto(`${server.base}/meetings/new`);
  await setupPage.waitForSelector('body[data-hydrated="true"]');
  await setupPage.getByLabel("Title").fill("Bench meeting");
  await setupPage.getByRole("button", { name: "Schedule" }).click();
  await setupPage.waitForURL(/\/m\/[A-Za-z0-9_-]+$/);
  const meeting = new URL(setupPage.url()).pathname;
  const cookies = await setup.cookies();
  await setup.close();

  const pages = [
    ["home", "/", false],
    ["sign-in", "/signin", false],
    ["meetings", "/meetings", true],
    ["meeting", meeting, true],
    ["lobby", `${meeting}/join`, true],
    ["call", `${meeting}/room`, true],
  ];
  const rows = [];
  for (const [name, path, signedIn] of pages) {
    const first = [];
    const repeat = [];
    for (let run = 0; run < RUNS; run++) {
      const context = await browser.newContext();
      if (signedIn) await context.addCookies(cookies);
      const page = await context.newPage();
      first.push(await visit(page, server.base, path));
      repeat.push(await visit(page, server.base, path));
      await context.close();
    }
    rows.push({ name, first, repeat });
  }

  console.log(`\npage weight (bytes on the wire as served; median of ${RUNS} runs; first visit = empty cache, repeat = same browser)`);
  console.log(
    ["page", "html KiB", "wasm KiB", "js KiB", "css KiB", "other KiB", "first KiB", "repeat KiB", "hydrated ms (first)", "hydrated ms (repeat)"]
      .map((h, i) => (i === 0 ? h.padEnd(9) : h.padStart(i >= 8 ? 20 : 10)))
      .join(" "),
  );
  for (const { name, first, repeat } of rows) {
    const part = (kind) => median(first.map((v) => v.bytes[kind]));
    const total = (visits) => median(visits.map((v) => Object.values(v.bytes).reduce((a, b) => a + b, 0)));
    console.log(
      [
        name.padEnd(9),
        ...["html", "wasm", "js", "css", "other"].map((k) => kb(part(k)).padStart(10)),
        kb(total(first)).padStart(10),
        kb(total(repeat)).padStart(10),
        String(median(first.map((v) => v.hydratedMs))).padStart(20),
        String(median(repeat.map((v) => v.hydratedMs))).padStart(20),
      ].join(" "),
    );
  }
} finally {
  await browser.close();
  server.stop();
}
