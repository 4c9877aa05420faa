import { test, expect } from "./fixtures";
import type { Browser } from "@playwright/test";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { closeAll, expectPlaying, joinCall, meetingWith, person, tileOf, type Person } from "./call-helpers";

// Three browsers and two moim instances this test starts (and kills one
// of) on a small, busy machine.
test.describe.configure({ timeout: 300_000 });

const port = Number(process.env.MOIM_E2E_PORT ?? 3100);
const root = path.resolve(__dirname, "../..");
const bin = process.env.MOIM_BIN ?? path.join(root, "target/debug/moim");
const siteRoot = process.env.MOIM_SITE_ROOT ?? path.join(root, "target/site");
const logDir = process.env.MOIM_E2E_LOG_DIR ?? os.tmpdir();

/**
 * A moim instance of the shared cluster (the PostgreSQL database and Redis
 * scripts/test.sh made), its media server on a fixed UDP port, started
 * here so the test can kill it as a crash would. `media` says which calls
 * go through the media server (every call by default).
 */
async function startInstance(
  name: string,
  httpPort: number,
  udpPort: number,
  media: string[] = ["--media-mode", "sfu"],
): Promise<ChildProcess> {
  expect(process.env.MOIM_E2E_REDIS_URL, "run through scripts/test.sh (it starts Redis and PostgreSQL)").toBeTruthy();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `moim-e2e-${name}-`));
  const log = fs.openSync(path.join(logDir, `${name}.log`), "a");
  const child = spawn(
    bin,
    [
      "--listen", `127.0.0.1:${httpPort}`, "--data-dir", dataDir, "--site-root", siteRoot, "--log", "warn",
      "--sign-ups-per-hour", "100000", "--guests-per-hour", "100000",
      "--database-url", process.env.MOIM_E2E_DATABASE_URL!, "--redis-url", process.env.MOIM_E2E_REDIS_URL!,
      ...media, "--sfu-udp-listen", `127.0.0.1:${udpPort}`,
    ],
    { stdio: ["ignore", log, log] },
  );
  await expect
    .poll(async () => {
      try {
        return (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status;
      } catch {
        return 0;
      }
    }, { timeout: 60_000, message: `${name} is ready` })
    .toBe(200);
  return child;
}

/**
 * Ann on instance A, Bob and Cy on instance B, and a meeting of Ann's
 * with both of them invited.
 */
async function annOnABobAndCyOnB(browser: Browser, httpA: number, httpB: number) {
  const ann = await person(browser, "ann", `http://127.0.0.1:${httpA}`);
  const bob = await person(browser, "bob", `http://127.0.0.1:${httpB}`);
  const cy = await person(browser, "cy", `http://127.0.0.1:${httpB}`);
  return { ann, bob, cy, meeting: await meetingWith(ann, [bob, cy]) };
}

/**
 * Where the page's newest peer connection sends media (the media server's
 * UDP port, once connected), and how many video frames it decoded.
 */
async function mediaServerLink(p: Person): Promise<{ port: number; frames: number }> {
  return p.page.evaluate(async () => {
    const pc = ((window as any).__pcs as RTCPeerConnection[]).at(-1);
    if (!pc || pc.connectionState !== "connected") return { port: 0, frames: 0 };
    const stats = await pc.getStats();
    let port = 0;
    let frames = 0;
    stats.forEach((s: any) => {
      if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded ?? 0;
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = stats.get(s.selectedCandidatePairId) as any;
        port = (stats.get(pair?.remoteCandidateId) as any)?.port ?? 0;
      }
    });
    return { port, frames };
  });
}

test("a call through the media server across two instances lives on one, and moves when that one dies", async ({ browser }) => {
  const [httpA, httpB, udpA, udpB] = [port + 9, port + 10, port + 20, port + 21];
  const instanceA = await startInstance("sfu-cluster-a", httpA, udpA);
  const instanceB = await startInstance("sfu-cluster-b", httpB, udpB);
  try {
    const { ann, bob, cy, meeting } = await annOnABobAndCyOnB(browser, httpA, httpB);
    // Ann joins first, on A: the call's media lives on A.
    await joinCall(ann, meeting);
    await joinCall(bob, meeting);
    await joinCall(cy, meeting);
    for (const p of [ann, bob, cy]) await expect(p.page.getByTestId("media-path")).toHaveAttribute("data-path", "server");
    await expectPlaying(tileOf(bob.page, cy.name));
    await expectPlaying(tileOf(bob.page, ann.name));
    await expectPlaying(tileOf(cy.page, bob.name));
    // Bob and Cy signal through B, and send their media to A's media server.
    for (const p of [bob, cy]) expect((await mediaServerLink(p)).port).toBe(udpA);

    // A dies.
    const toldAfter: string[] = [];
    for (const p of [bob, cy]) {
      p.page.on("console", (message) => {
        if (message.text().includes("media server moved")) toldAfter.push(`${p.name} told after ${Date.now() - killed} ms`);
      });
    }
    instanceA.kill("SIGKILL");
    const killed = Date.now();
    // Bob and Cy are told the media moved, connect again, and see each
    // other through B.
    // Both pages looked at side by side, every 100 ms.
    const backAfter = new Map<string, number>();
    while (backAfter.size < 2) {
      expect(Date.now() - killed, "video through B within 30 s").toBeLessThan(30_000);
      await Promise.all(
        [bob, cy].map(async (p) => {
          if (backAfter.has(p.name)) return;
          const link = await mediaServerLink(p);
          if (link.port === udpB && link.frames > 0) backAfter.set(p.name, Date.now() - killed);
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`instance A killed: ${toldAfter.join(", ")}; video back through B after ${[...backAfter.values()].join(" ms and ")} ms`);
    // The figure is printed (3 to 5 s here, under a loaded test machine);
    // the test holds it to what only the move itself explains: well before
    // a browser would give up on the dead connection (about 30 s) and
    // start over by itself.
    expect(Math.max(...backAfter.values()), "video came back by the move, not by a browser timeout").toBeLessThan(10_000);
    await expectPlaying(tileOf(bob.page, cy.name));
    await expectPlaying(tileOf(cy.page, bob.name));
    // Ann's tile goes (her instance took her call connection with it), and
    // chat goes on.
    await expect(tileOf(bob.page, ann.name)).toHaveCount(0, { timeout: 30_000 });
    await bob.page.getByTestId("chat-button").click();
    await cy.page.getByTestId("chat-button").click();
    await bob.page.getByTestId("chat-input").fill("Still here after the move");
    await bob.page.getByTestId("chat-input").press("Enter");
    await expect(cy.page.getByTestId("chat-message").last()).toContainText("Still here after the move");
    await closeAll([bob, cy]);
    // Ann's page was on A: it is still trying to reach it.
    await ann.context.close();
  } finally {
    instanceA.kill("SIGKILL");
    instanceB.kill("SIGTERM");
  }
});

test("an automatic call spread over two instances moves to the media server as one", async ({ browser }) => {
  const [httpA, httpB, udpA, udpB] = [port + 11, port + 12, port + 22, port + 23];
  // Meetings move at the third arrival here (the fifth by default).
  const automatic = ["--sfu-switch-at", "3"];
  const instanceA = await startInstance("switch-cluster-a", httpA, udpA, automatic);
  const instanceB = await startInstance("switch-cluster-b", httpB, udpB, automatic);
  try {
    const { ann, bob, cy, meeting } = await annOnABobAndCyOnB(browser, httpA, httpB);
    await joinCall(ann, meeting);
    await joinCall(bob, meeting);
    for (const p of [ann, bob]) await expect(p.page.getByTestId("media-path")).toHaveAttribute("data-path", "direct");
    await expectPlaying(tileOf(ann.page, bob.name));
    await expectPlaying(tileOf(bob.page, ann.name));

    // Cy, on B like Bob, makes three: Ann on A moves with them.
    await joinCall(cy, meeting);
    for (const p of [ann, bob, cy]) {
      await expect(p.page.getByTestId("media-path")).toHaveAttribute("data-path", "server", { timeout: 20_000 });
    }
    // Everyone's media goes to one media server, and everyone sees the others.
    const ports = new Set<number>();
    for (const p of [ann, bob, cy]) {
      await expect.poll(async () => (await mediaServerLink(p)).frames, { timeout: 30_000 }).toBeGreaterThan(0);
      ports.add((await mediaServerLink(p)).port);
      for (const other of [ann, bob, cy].filter((o) => o !== p)) await expectPlaying(tileOf(p.page, other.name));
    }
    expect([...ports].length, `media server ports in use: ${[...ports].join(", ")}`).toBe(1);
    expect([udpA, udpB]).toContain([...ports][0]);
    await closeAll([ann, bob, cy]);
  } finally {
    instanceA.kill("SIGKILL");
    instanceB.kill("SIGTERM");
  }
});
