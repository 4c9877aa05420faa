import { defineConfig } from "@playwright/test";
import * as path from "node:path";
import * as fs from "node:fs";
import * as os from "node:os";

// scripts/test.sh builds moim and says where the binary and site are; the
// defaults fit a plain `cargo leptos build` in the repository.
const root = path.resolve(__dirname, "..");
const bin = process.env.MOIM_BIN ?? path.join(root, "target/debug/moim");
const siteRoot = process.env.MOIM_SITE_ROOT ?? path.join(root, "target/site");
const port = Number(process.env.MOIM_E2E_PORT ?? 3100);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "moim-e2e-"));
const chromium = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// Each moim server writes its output to a file of its own here, so that
// scripts/test.sh can fail the run when any of them panicked (a panic in a
// server task does not always fail a test by itself).
const logDir =
  process.env.MOIM_E2E_LOG_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), "moim-e2e-logs-"));
fs.mkdirSync(logDir, { recursive: true });
const logged = (name: string, command: string) =>
  `exec ${command} >>"${path.join(logDir, `${name}.log`)}" 2>&1`;

export const baseURL = `http://127.0.0.1:${port}`;
// A second moim that sends all media through a real coturn (TURN REST
// credentials from a shared secret, iceTransportPolicy "relay").
const relayPort = port + 1;
const turnPort = Number(process.env.MOIM_E2E_TURN_PORT ?? 3479);
const turnSecret = "moim-e2e-turn-secret";
const relayURL = `http://127.0.0.1:${relayPort}`;
const relayDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "moim-e2e-relay-"));
// Instances whose calls all go through the built-in media server.
const sfuPort = port + 4;
const sfuDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "moim-e2e-sfu-"));
// Two more instances sharing PostgreSQL and Redis (scripts/test.sh makes
// both), for the scale-out test: ports +2 and +3.
const clusterDb = process.env.MOIM_E2E_DATABASE_URL;
const clusterRedis = process.env.MOIM_E2E_REDIS_URL;
const clusterServers = [port + 2, port + 3].map((p) => ({
  command: logged(
    `cluster-${p}`,
    `"${bin}" --listen 127.0.0.1:${p} --data-dir "${dataDir}/cluster-${p}" --site-root "${siteRoot}" --log warn --sign-ups-per-hour 100000 --guests-per-hour 100000 ` +
      `--database-url "${clusterDb}" --redis-url "${clusterRedis}"`,
  ),
  url: `http://127.0.0.1:${p}/readyz`,
  reuseExistingServer: false,
  timeout: 60_000,
  stdout: "pipe" as const,
  stderr: "pipe" as const,
}));

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: chromium,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        // Three fake cameras, so that a camera can be changed mid-call
        // (Chromium's second fake camera is a depth camera that cannot be
        // sent; the third can).
        "--use-fake-device-for-media-stream=device-count=3",
      ],
    },
  },
  webServer: [
    {
      command: logged(
        "main",
        `"${bin}" --listen 127.0.0.1:${port} --data-dir "${dataDir}" --site-root "${siteRoot}" --log warn --sign-ups-per-hour 100000 --guests-per-hour 100000`,
      ),
      url: `${baseURL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      // coturn from Debian (scripts/setup.sh installs it), on loopback only.
      command:
        `turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port=${turnPort} ` +
        `--min-port=49160 --max-port=49400 --use-auth-secret --static-auth-secret=${turnSecret} ` +
        `--realm=moim.test --userdb="${relayDataDir}/turndb" --no-cli --no-tls --no-dtls ` +
        `--allow-loopback-peers --no-software-attribute --log-file=stdout --simple-log`,
      port: turnPort,
      reuseExistingServer: false,
      timeout: 30_000,
      stdout: "ignore",
      stderr: "pipe",
    },
    {
      command: logged(
        "relay",
        `"${bin}" --listen 127.0.0.1:${relayPort} --data-dir "${relayDataDir}" --site-root "${siteRoot}" --log warn --sign-ups-per-hour 100000 --guests-per-hour 100000 ` +
          `--turn-urls "turn:127.0.0.1:${turnPort}?transport=udp" --turn-secret ${turnSecret} --ice-transport-policy relay ` +
          // Short-lived credentials, so the test sees them renewed mid-call.
          `--turn-credential-ttl-seconds 60`,
      ),
      url: `${relayURL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      // Every call through the built-in media server (port +4), and one
      // that also sends it through coturn only (port +5).
      command: logged(
        "sfu",
        `"${bin}" --listen 127.0.0.1:${sfuPort} --data-dir "${sfuDataDir}" --site-root "${siteRoot}" --log warn --sign-ups-per-hour 100000 --guests-per-hour 100000 ` +
          `--media-mode sfu --sfu-udp-listen 127.0.0.1:0`,
      ),
      url: `http://127.0.0.1:${sfuPort}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      command: logged(
        "sfu-relay",
        `"${bin}" --listen 127.0.0.1:${sfuPort + 1} --data-dir "${sfuDataDir}/relay" --site-root "${siteRoot}" --log warn --sign-ups-per-hour 100000 --guests-per-hour 100000 ` +
          `--media-mode sfu --sfu-udp-listen 127.0.0.1:0 ` +
          `--turn-urls "turn:127.0.0.1:${turnPort}?transport=udp" --turn-secret ${turnSecret} --ice-transport-policy relay`,
      ),
      url: `http://127.0.0.1:${sfuPort + 1}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      // Meetings move to the media server at the third arrival here (the
      // default is the fifth): the same move with fewer browsers on a
      // small test machine.
      command: logged(
        "switch",
        `"${bin}" --listen 127.0.0.1:${sfuPort + 2} --data-dir "${sfuDataDir}/switch" --site-root "${siteRoot}" --log warn --sign-ups-per-hour 100000 --guests-per-hour 100000 ` +
          `--sfu-switch-at 3 --sfu-udp-listen 127.0.0.1:0`,
      ),
      url: `http://127.0.0.1:${sfuPort + 2}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      // Every call through the media server, each browser receiving one
      // camera (port +8): last-N with three browsers.
      command: logged(
        "last-n",
        `"${bin}" --listen 127.0.0.1:${sfuPort + 4} --data-dir "${sfuDataDir}/last-n" --site-root "${siteRoot}" --log warn --sign-ups-per-hour 100000 --guests-per-hour 100000 ` +
          `--media-mode sfu --sfu-udp-listen 127.0.0.1:0 --sfu-last-n 1`,
      ),
      url: `http://127.0.0.1:${sfuPort + 4}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      // The same coturn with the wrong shared secret (port +7): the
      // connection self-test must say the relay cannot be reached.
      command: logged(
        "bad-turn",
        `"${bin}" --listen 127.0.0.1:${port + 7} --data-dir "${relayDataDir}/bad-turn" --site-root "${siteRoot}" --log warn --sign-ups-per-hour 100000 --guests-per-hour 100000 ` +
          `--turn-urls "turn:127.0.0.1:${turnPort}?transport=udp" --turn-secret not-the-${turnSecret}`,
      ),
      url: `http://127.0.0.1:${port + 7}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    ...(clusterDb && clusterRedis ? clusterServers : []),
  ],
});
