import { test, expect, hydrated } from "./fixtures";
import { closeAll, person } from "./call-helpers";

test.describe.configure({ timeout: 90_000 });

const port = Number(process.env.MOIM_E2E_PORT ?? 3100);
// A moim whose TURN is the test coturn with the right secret (port +1),
// and one with a wrong secret (port +7); see playwright.config.ts.
const relayURL = `http://127.0.0.1:${port + 1}`;
const badTurnURL = `http://127.0.0.1:${port + 7}`;

test("the self-test checks devices, reaches the relay through coturn, and reports it", async ({ browser }) => {
  const ann = await person(browser, "check", relayURL);
  await ann.page.goto("/selftest");
  await hydrated(ann.page);
  await expect(ann.page.getByRole("heading", { name: "Check your setup" })).toBeVisible();

  await ann.page.getByRole("button", { name: "Start camera and microphone" }).click();
  await expect(ann.page.getByTestId("selftest-camera")).toContainText("Your camera works");
  await expect(ann.page.getByTestId("selftest-microphone")).not.toHaveText("");
  // The fake microphone beeps: it is heard.
  await expect(ann.page.getByTestId("selftest-microphone")).toHaveAttribute("data-heard", "true", { timeout: 10_000 });
  await ann.page.getByRole("button", { name: "Play a test sound" }).click();

  await ann.page.getByRole("button", { name: "Test the connection" }).click();
  const verdict = ann.page.getByTestId("selftest-verdict");
  await expect(verdict).toHaveAttribute("data-relay", "ok", { timeout: 30_000 });
  await expect(verdict).toHaveAttribute("data-verdict", /^(good|relay_only)$/);
  await expect(verdict).not.toHaveText("");
  const relayCandidates = Number(await ann.page.getByTestId("selftest-candidates").getAttribute("data-relay"));
  expect(relayCandidates).toBeGreaterThan(0);

  // The report says the same, as JSON the operator can read.
  const report = JSON.parse(await ann.page.getByTestId("selftest-report").inputValue());
  expect(report.network.turn_configured).toBe(true);
  expect(report.network.candidates.relay).toBe(relayCandidates);
  expect(typeof report.network.relay_call_ms).toBe("number");
  expect(report.devices.microphone).toBe(true);
  await closeAll([ann]);
});

test("the self-test says the relay cannot be reached when the TURN secret is wrong", async ({ browser }) => {
  const bob = await person(browser, "check", badTurnURL);
  await bob.page.goto("/selftest");
  await hydrated(bob.page);
  await bob.page.getByRole("button", { name: "Test the connection" }).click();
  const verdict = bob.page.getByTestId("selftest-verdict");
  await expect(verdict).toHaveAttribute("data-relay", "failed", { timeout: 40_000 });
  await expect(verdict).toHaveAttribute("data-verdict", /^(relay_failed|blocked)$/);
  await expect(verdict).toContainText(/relay could not be reached|Nothing outside your network answered/);
  const report = JSON.parse(await bob.page.getByTestId("selftest-report").inputValue());
  expect(report.network.candidates.relay).toBe(0);
  expect(report.network.relay_call_error).toBeTruthy();
  // Expected console noise: the browser logs the TURN server's refusal.
  bob.errors.length = 0;
  await closeAll([bob]);
});

test("the self-test's relay credentials are for signed-in people only", async ({ page }) => {
  await page.goto(`${relayURL}/selftest`);
  const origin = relayURL;
  const response = await page.request.post(`${relayURL}/api/self_test_servers`, {
    headers: { origin, accept: "application/json" },
    form: {},
  });
  expect(response.status()).toBe(401);
  expect(await response.text()).not.toContain("turn:");
});
