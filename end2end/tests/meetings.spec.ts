import { test, expect, hydrated, uniqueName } from "./fixtures";
import type { Page } from "@playwright/test";

const PASSWORD = "a long enough password";

/** Signs up through the server function, as the sign-up form does. */
async function signUp(page: Page, username: string): Promise<void> {
  await page.goto("/");
  const origin = new URL(page.url()).origin;
  const response = await page.request.post("/api/sign_up", {
    headers: { origin },
    form: { username, display_name: `Host ${username.slice(-4)}`, email: "", password: PASSWORD },
  });
  expect(response.status()).toBe(200);
}

test.use({ timezoneId: "Asia/Seoul", locale: "en-US" });

test("a host schedules a meeting and sees it in their own time zone", async ({ page }) => {
  await signUp(page, uniqueName("host"));

  await page.goto("/meetings");
  await hydrated(page);
  await page.getByTestId("schedule-link").click();
  await expect(page).toHaveURL(/\/meetings\/new$/);
  await hydrated(page);

  await page.getByLabel("Title").fill("Quarterly <b>planning</b>");
  await page.getByLabel("Description (optional)").fill("Bring numbers.");
  // 10:00 in Seoul (UTC+9) is 01:00 UTC.
  await page.getByLabel("Starts").fill("2030-01-15T10:00");
  await page.getByLabel("Duration in minutes").fill("45");
  await page.getByTestId("meeting-submit").click();

  await expect(page).toHaveURL(/\/m\/[a-z2-9]{26}$/);
  await expect(page.getByTestId("meeting-title")).toHaveText("Quarterly <b>planning</b>");
  const when = page.locator(".meeting-meta time").first();
  await expect(when).toHaveAttribute("datetime", "2030-01-15T01:00:00Z");
  await expect(when).toContainText("10:00");
  await expect(when).toContainText("GMT+9");
  await expect(page.getByTestId("join")).toBeDisabled();
  const link = await page.getByTestId("meeting-link").inputValue();
  expect(link).toBe(page.url());

  // The list shows it under upcoming, in local time too.
  await page.goto("/meetings");
  const card = page.getByTestId("upcoming").getByTestId("meeting-card");
  await expect(card).toHaveCount(1);
  await expect(card).toContainText("Quarterly <b>planning</b>");
  await expect(card.locator("time")).toContainText("10:00");
  await expect(card).toContainText("You host");

  // The calendar file is offered for download.
  await card.getByRole("link", { name: "Quarterly <b>planning</b>" }).click();
  await hydrated(page);
  const ics = await page.request.get(`${page.url()}/invite.ics`);
  expect(ics.status()).toBe(200);
  expect(await ics.text()).toContain("DTSTART:20300115T010000Z");

  // Edit: the new time shows at once.
  await page.getByTestId("edit-meeting").click();
  await hydrated(page);
  await expect(page.getByLabel("Starts")).toHaveValue("2030-01-15T10:00");
  await page.getByLabel("Starts").fill("2030-01-15T14:30");
  await page.getByTestId("meeting-submit").click();
  await expect(page).toHaveURL(/\/m\/[a-z2-9]{26}$/);
  await expect(page.locator(".meeting-meta time").first()).toHaveAttribute("datetime", "2030-01-15T05:30:00Z");

  // Cancel: back to the list, marked cancelled; the link now looks missing.
  const meetingUrl = page.url();
  await page.locator(".danger-zone summary").click();
  await page.getByTestId("cancel-meeting").click();
  await expect(page).toHaveURL(/\/meetings$/);
  await expect(page.getByTestId("upcoming").getByTestId("meeting-card")).toContainText("Cancelled");
  const gone = await page.request.get(meetingUrl);
  expect(gone.status()).toBe(404);
});

test("bad meeting input is explained next to the field", async ({ page }) => {
  await signUp(page, uniqueName("plan"));
  await page.goto("/meetings/new");
  await hydrated(page);
  await page.getByLabel("Title").fill("Yesterday's meeting");
  await page.getByLabel("Starts").fill("2020-01-01T09:00");
  await page.getByLabel("Duration in minutes").fill("0");
  await page.getByLabel("Invitees").fill("nobody-by-that-name");
  await page.getByTestId("meeting-submit").click();
  await expect(page.locator('[data-field-error="starts_at_ms"]')).toContainText("already passed");
  await expect(page.locator('[data-field-error="duration_minutes"]')).toContainText("outside the allowed range");
  await expect(page.locator('[data-field-error="invitees"]')).toContainText("nobody-by-that-name");
  await expect(page).toHaveURL(/\/meetings\/new$/);
});

test("an instant meeting can be joined right away", async ({ page }) => {
  await signUp(page, uniqueName("now"));
  await page.goto("/meetings");
  await hydrated(page);
  await page.getByTestId("instant-meeting").click();
  await expect(page).toHaveURL(/\/m\/[a-z2-9]{26}$/);
  await expect(page.getByTestId("meeting-title")).toHaveText("Instant meeting");
  await expect(page.getByTestId("join")).toBeEnabled();
});
