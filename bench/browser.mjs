// What the benchmarks that run in Chromium share (`bench/pages`,
// `bench/join`): a release moim on a free port with a fresh data directory,
// and Debian's Chromium driven by Playwright as the end-to-end tests
// install it (never a browser download).

import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../end2end/package.json"));
const { chromium } = require("@playwright/test");

export const PASSWORD = "a long enough password";

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Starts `moim` serving `siteRoot`; resolves once it is ready. */
export async function startMoim(moim, siteRoot) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), "moim-bench-browser-"));
  const child = spawn(
    moim,
    ["--listen", `127.0.0.1:${port}`, "--public-url", base, "--data-dir", dataDir, "--site-root", siteRoot, "--log", "warn"],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  for (let i = 0; i < 200; i++) {
    try {
      const response = await fetch(`${base}/readyz`);
      if (response.ok) return { base, stop: () => { child.kill(); rmSync(dataDir, { recursive: true, force: true }); } };
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill();
  throw new Error("moim did not become ready");
}

/** Chromium with fake camera and microphone, allowed without asking. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"],
  });
}
