import { test, expect } from "./fixtures";
import { closeAll, expectPlaying, joinCall, meetingWith, person, tileOf } from "./call-helpers";

test.describe.configure({ timeout: 90_000 });

// Two moim instances on one PostgreSQL and one Redis (playwright.config.ts
// starts them when scripts/test.sh provides the database and Redis).
const port = Number(process.env.MOIM_E2E_PORT ?? 3100);
const instanceA = `http://127.0.0.1:${port + 2}`;
const instanceB = `http://127.0.0.1:${port + 3}`;

test("two browsers on two instances are in one call: video and chat", async ({ browser }) => {
  expect(process.env.MOIM_E2E_REDIS_URL, "run through scripts/test.sh (it starts Redis and PostgreSQL)").toBeTruthy();
  const ann = await person(browser, "ann", instanceA);
  const bob = await person(browser, "bob", instanceB);
  const path = await meetingWith(ann, [bob]);
  await joinCall(ann, path);
  await joinCall(bob, path);
  expect(new URL(ann.page.url()).port).toBe(String(port + 2));
  expect(new URL(bob.page.url()).port).toBe(String(port + 3));

  await expectPlaying(tileOf(ann.page, bob.name));
  await expectPlaying(tileOf(bob.page, ann.name));

  await ann.page.getByTestId("chat-button").click();
  await bob.page.getByTestId("chat-button").click();
  await ann.page.getByTestId("chat-input").fill("Hello from instance A");
  await ann.page.getByTestId("chat-input").press("Enter");
  await expect(bob.page.getByTestId("chat-message").last()).toContainText("Hello from instance A");
  await bob.page.getByTestId("chat-input").fill("And back from instance B");
  await bob.page.getByTestId("chat-input").press("Enter");
  await expect(ann.page.getByTestId("chat-message").last()).toContainText("And back from instance B");

  // Media state crosses too.
  await bob.page.getByTestId("mic-button").click();
  await expect(tileOf(ann.page, bob.name)).toHaveAttribute("data-mic", "off");
  await closeAll([ann, bob]);
});
