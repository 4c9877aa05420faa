import { test, expect, hydrated, uniqueName, watchConsole } from "./fixtures";
import type { Browser, Page } from "@playwright/test";

const PASSWORD = "a long enough password";

async function hostWithInstantMeeting(page: Page): Promise<string> {
  await page.goto("/");
  const origin = new URL(page.url()).origin;
  const username = uniqueName("chair");
  const signUp = await page.request.post("/api/sign_up", {
    headers: { origin },
    form: { username, display_name: "Chair Person", email: "", password: PASSWORD },
  });
  expect(signUp.status()).toBe(200);
  const schedule = await page.request.post("/api/schedule_meeting", {
    headers: { origin },
    form: { title: "Door test", instant: "1", waiting_room: "on", allow_guests: "on" },
  });
  expect(schedule.status()).toBe(200);
  return `/m/${await schedule.json()}`;
}

async function guestPage(browser: Browser): Promise<{ page: Page; errors: string[]; close: () => Promise<void> }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchConsole(page);
  return { page, errors, close: () => context.close() };
}

/** The preview shows live camera frames (fake device): size known, time advancing. */
async function expectLivePreview(page: Page): Promise<void> {
  const video = page.getByTestId("preview-video");
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
  const t0 = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(t0);
}

test("a guest previews, knocks, is admitted by the host and reaches the room", async ({ page, browser }) => {
  const meetingPath = await hostWithInstantMeeting(page);
  await page.goto(meetingPath);
  await hydrated(page);
  const panel = page.getByTestId("knock-panel");
  await expect(panel).toContainText("Nobody is waiting.");

  const guest = await guestPage(browser);
  await guest.page.goto(meetingPath);
  await hydrated(guest.page);
  await guest.page.getByTestId("join").click();
  await expect(guest.page).toHaveURL(new RegExp(`${meetingPath}/join$`));
  await hydrated(guest.page);
  await expectLivePreview(guest.page);
  await expect(guest.page.getByTestId("device-camera").or(guest.page.locator("#device-camera"))).toBeVisible();
  await expect.poll(() => guest.page.locator("#device-camera option").count()).toBeGreaterThan(0);

  await guest.page.getByLabel("Your name").fill("Guest <script>x</script> Lee");
  await guest.page.getByTestId("lobby-enter").click();
  await expect(guest.page.getByTestId("lobby-waiting")).toBeVisible();

  // The knock reaches the host without a reload.
  const knock = panel.getByTestId("knock");
  await expect(knock).toHaveCount(1);
  await expect(knock).toContainText("Guest <script>x</script> Lee");
  await expect(knock).toContainText("guest");
  // The decision is pushed to the waiting page (Server-Sent Events): once
  // the push is connected it stops asking every 1.5 s, and moves on within
  // a second. Watched over more than two of those intervals: a page still
  // polling asks at least twice, while the 15 s safety net may ask once
  // (on a slow machine the first one can fall in any window).
  await expect(guest.page.getByTestId("lobby-waiting")).toHaveAttribute("data-push", "live");
  const doorPolls: string[] = [];
  guest.page.on("request", (request) => {
    if (request.url().includes("/api/door_state")) doorPolls.push(request.url());
  });
  await guest.page.waitForTimeout(3_200);
  const clicked = Date.now();
  await knock.getByTestId("admit").click();

  await guest.page.waitForURL(new RegExp(`${meetingPath}/room\\?mic=1&cam=1$`), { timeout: 5000 });
  const admittedAfter = Date.now() - clicked;
  expect(admittedAfter, `admitted ${admittedAfter} ms after the click`).toBeLessThan(1000);
  expect(doorPolls.length, "no polling while the push is connected (the safety net aside)").toBeLessThanOrEqual(1);
  await expect(guest.page.getByTestId("call")).toHaveAttribute("data-phase", "live");
  await expect(panel).toContainText("Nobody is waiting.");
  expect(guest.errors).toEqual([]);
  await guest.close();
});

test("a denied guest is told so", async ({ page, browser }) => {
  const meetingPath = await hostWithInstantMeeting(page);
  await page.goto(meetingPath);
  await hydrated(page);

  const guest = await guestPage(browser);
  await guest.page.goto(`${meetingPath}/join`);
  await hydrated(guest.page);
  await guest.page.getByLabel("Your name").fill("Uninvited");
  await guest.page.getByTestId("lobby-enter").click();
  await expect(guest.page.getByTestId("lobby-waiting")).toBeVisible();

  const knock = page.getByTestId("knock-panel").getByTestId("knock");
  await expect(knock).toContainText("Uninvited");
  await knock.getByTestId("deny").click();

  await expect(guest.page.getByTestId("lobby-denied")).toHaveText("A host did not let you in to this meeting.");
  await expect(guest.page).toHaveURL(new RegExp(`${meetingPath}/join$`));
  // Going to the room directly does not help.
  await guest.page.goto(`${meetingPath}/room`);
  await expect(guest.page).toHaveURL(new RegExp(`${meetingPath}/join$`));
  expect(guest.errors).toEqual([]);
  await guest.close();
});

test("when the camera is refused or missing, the lobby says so and still lets you in", async ({ page, browser }) => {
  const meetingPath = await hostWithInstantMeeting(page);
  for (const [name, message] of [
    ["NotAllowedError", "was not allowed to use your camera or microphone"],
    ["NotFoundError", "No camera or microphone was found"],
  ]) {
    const context = await browser.newContext();
    await context.addInitScript((errorName: string) => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("refused", errorName));
    }, name);
    const guest = await context.newPage();
    const errors = watchConsole(guest);
    await guest.goto(`${meetingPath}/join`);
    await hydrated(guest);
    await expect(guest.getByTestId("media-problem")).toContainText(message);
    await guest.getByLabel("Your name").fill(`No media ${name}`);
    await guest.getByTestId("lobby-enter").click();
    await expect(guest.getByTestId("lobby-waiting")).toBeVisible();
    expect(errors).toEqual([]);
    await context.close();
  }
});
