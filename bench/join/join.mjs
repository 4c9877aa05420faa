// Join time, in Chromium with fake devices (`scripts/bench.sh join`).
//
// A host waits in a 1:1 call; a second person, on the lobby page
// (hydrated, camera preview up), clicks "Join now". Measured: the time from
// that click to the first video frame of the host painted in the joiner's
// call (requestVideoFrameCallback on the remote tile), over N joins (each
// in a fresh browser context, leaving the call after). Printed: p50, p90,
// min and max, and the same split at the moment the call page is live
// (signaling joined) so the media part is visible on its own, and the time
// from the click to the joiner's first frame painted in the host's call
// (the other direction: a stream that comes to a browser already in the
// call); once for a meeting whose media goes directly between the browsers
// (mesh) and once for one set to "media server always" (SFU), in the same
// run.
//
// Usage: node bench/join/join.mjs MOIM_BINARY SITE_ROOT [joins]

import { PASSWORD, launchChromium, startMoim } from "../browser.mjs";

const [moim, siteRoot, joinsArg] = process.argv.slice(2);
if (!moim || !siteRoot) {
  console.error("usage: node bench/join/join.mjs MOIM_BINARY SITE_ROOT [joins]");
  process.exit(2);
}
const JOINS = Number(joinsArg ?? 20);

/**
 * Bench instrumentation: stamps (wall clock, shared with Node) the first
 * frame any remote tile's video paints, and the moment the call is live.
 */
const STAMP_FIRST_FRAME = () => {
  const w = window;
  const watch = () => {
    const call = document.querySelector('[data-testid="call"][data-phase="live"]');
    if (call && !w.__liveAt) w.__liveAt = Date.now();
    const video = document.querySelector('[data-testid="tile"][data-local="false"] video');
    if (video && !video.__watched && "requestVideoFrameCallback" in video) {
      video.__watched = true;
      video.requestVideoFrameCallback(() => {
        w.__firstFrameAt ??= Date.now();
      });
    }
    if (!w.__firstFrameAt) setTimeout(watch, 5);
  };
  watch();
};

/**
 * The host's side: stamps the first frame each newcomer's tile paints (the
 * bench clears the stamp before each join).
 */
const STAMP_NEWCOMER_FRAME = () => {
  const w = window;
  const watch = () => {
    for (const video of document.querySelectorAll('[data-testid="tile"][data-local="false"] video')) {
      if (!video.__watched && "requestVideoFrameCallback" in video) {
        video.__watched = true;
        video.requestVideoFrameCallback(() => {
          w.__newcomerFrameAt ??= Date.now();
        });
      }
    }
    setTimeout(watch, 5);
  };
  watch();
};

async function signUp(context, base, name) {
  const page = await context.newPage();
  await page.goto(`${base}/`);
  const response = await page.request.post(`${base}/api/sign_up`, {
    headers: { origin: base },
    form: { username: name, display_name: name, email: "", password: PASSWORD },
  });
  if (response.status() !== 200) throw new Error(`sign-up failed: ${response.status()}`);
  return page;
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

/** One meeting with `mediaMode`: the host waits in its call, the guest joins N times. */
async function measureJoins(host, guestName, guestCookies, mediaMode) {
  const scheduled = await host.request.post(`${server.base}/api/schedule_meeting`, {
    headers: { origin: server.base },
    form: { title: `Join bench (${mediaMode})`, instant: "1", invitees: guestName, max_participants: "2", media_mode: mediaMode },
  });
  if (scheduled.status() !== 200) throw new Error(`scheduling failed: ${scheduled.status()}`);
  const meeting = `/m/${await scheduled.json()}`;
  await host.goto(`${server.base}${meeting}/join`);
  await host.waitForSelector('body[data-hydrated="true"]');
  await host.getByTestId("lobby-enter").click();
  await host.waitForSelector('[data-testid="call"][data-phase="live"]');

  const toFrame = [];
  const toLive = [];
  const toHostFrame = [];
  for (let i = 0; i < JOINS; i++) {
    const context = await browser.newContext();
    await context.addCookies(guestCookies);
    await context.addInitScript(STAMP_FIRST_FRAME);
    const page = await context.newPage();
    await page.goto(`${server.base}${meeting}/join`);
    await page.waitForSelector('body[data-hydrated="true"]');
    // The lobby's own camera preview is up, as when a person clicks.
    await page.waitForFunction(() => [...document.querySelectorAll("video")].some((v) => v.videoWidth > 0), null, { timeout: 20_000 });
    await host.evaluate(() => {
      window.__newcomerFrameAt = undefined;
    });
    const clicked = Date.now();
    await page.getByTestId("lobby-enter").click();
    await page.waitForFunction(() => window.__firstFrameAt, null, { timeout: 30_000, polling: 50 });
    const { live, frame } = await page.evaluate(() => ({ live: window.__liveAt, frame: window.__firstFrameAt }));
    toFrame.push(frame - clicked);
    toLive.push(live - clicked);
    await host.waitForFunction(() => window.__newcomerFrameAt, null, { timeout: 30_000, polling: 50 });
    toHostFrame.push((await host.evaluate(() => window.__newcomerFrameAt)) - clicked);
    process.stderr.write(`join (${mediaMode}) ${i + 1}/${JOINS}: ${frame - clicked} ms\n`);
    await page.getByTestId("leave-button").click();
    await context.close();
    // The host sees the guest go before the next join.
    await host.waitForFunction(() => !document.querySelector('[data-testid="tile"][data-local="false"]'), null, { timeout: 20_000 });
  }
  await host.getByTestId("leave-button").click();
  return { toLive, toFrame, toHostFrame };
}

const server = await startMoim(moim, siteRoot);
const browser = await launchChromium();
try {
  const stamp = Date.now().toString(36);
  const hostContext = await browser.newContext();
  await hostContext.addInitScript(STAMP_NEWCOMER_FRAME);
  const host = await signUp(hostContext, server.base, `host${stamp}`);
  const guestName = `guest${stamp}`;
  const guestSetup = await browser.newContext();
  await signUp(guestSetup, server.base, guestName);
  const guestCookies = await guestSetup.cookies();
  await guestSetup.close();

  const results = [];
  for (const [label, mediaMode] of [["1:1 mesh", "direct"], ["1:1 through the media server (SFU)", "server"]]) {
    results.push([label, await measureJoins(host, guestName, guestCookies, mediaMode)]);
  }
  for (const [label, { toLive, toFrame, toHostFrame }] of results) {
    console.log(`\njoin time, ${label} on loopback, ${JOINS} joins ("Join now" click to ...)`);
    console.log(["to", "p50 ms", "p90 ms", "min ms", "max ms"].map((h, i) => (i === 0 ? h.padEnd(28) : h.padStart(8))).join(" "));
    for (const [name, values] of [
      ["call live (signaling)", toLive],
      ["first remote frame painted", toFrame],
      ["joiner's frame at the host", toHostFrame],
    ]) {
      console.log(
        [name.padEnd(28), ...[50, 90].map((p) => String(percentile(values, p)).padStart(8)), String(Math.min(...values)).padStart(8), String(Math.max(...values)).padStart(8)].join(" "),
      );
    }
    console.log(`goal: first remote frame p50 < 500 ms: ${percentile(toFrame, 50) < 500 ? "met" : "not met"}`);
  }
} finally {
  await browser.close();
  server.stop();
}
