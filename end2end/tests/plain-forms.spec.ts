import { test, expect, uniqueName } from "./fixtures";
import type { Page } from "@playwright/test";

// A form sent before the page's code has loaded (a slow network, a large
// bundle) or with JavaScript off is a plain HTML form post. It must land
// where the interactive form would, and a refusal must bring the person
// back to the form with the reasons beside the fields: never a page of JSON.
test.use({ javaScriptEnabled: false });

const PASSWORD = "a long enough password";

async function expectNoJsonPage(page: Page) {
  await expect(page).not.toHaveURL(/\/api\//);
  expect(await page.locator("body").innerText()).not.toContain('{"');
}

test("sign up and sign in as plain forms, with refusals shown beside the fields", async ({ page }) => {
  const username = uniqueName("plain");
  await page.goto("/signup?next=/meetings");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill("Plain Form");
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  await expectNoJsonPage(page);
  await expect(page).toHaveURL(/\/signup/);
  await expect(page.locator('[data-field-error="password"]')).not.toHaveText("");
  // What was typed comes back with the refusal; the password never does.
  await expect(page.getByLabel("Username")).toHaveValue(username);
  await expect(page.getByLabel("Display name")).toHaveValue("Plain Form");
  await expect(page.getByLabel("Password")).toHaveValue("");
  // Only once: the same page opened again is the empty form.
  await page.reload();
  await expect(page.getByLabel("Username")).toHaveValue("");

  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill("Plain Form");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expectNoJsonPage(page);
  // Where it was going: the meetings page, signed in.
  await expect(page).toHaveURL(/\/meetings$/);
  await expect(page.getByTestId("viewer-name")).toHaveText("Plain Form");

  // Signed out (a fresh browser), a wrong password is explained on the form.
  await page.context().clearCookies();
  await page.goto("/signin?next=/profile");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expectNoJsonPage(page);
  await expect(page).toHaveURL(/\/signin/);
  await expect(page.getByTestId("form-error")).toHaveText("Incorrect username or password.");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-username")).toHaveText(username);
});

test("schedule and edit a meeting as plain forms, in the viewer's time zone", async ({ page, context }) => {
  const username = uniqueName("plainmeet");
  // (The meetings page renders whole on the server; others stream parts
  // in with a small script, which JavaScript off does not run.)
  await page.goto("/signup?next=/meetings");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill("Plain Host");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByTestId("viewer-name")).toHaveText("Plain Host");

  // No zone known yet: the form says its times are UTC, and a missing
  // title comes back beside the field with everything else as it was sent.
  await page.goto("/meetings/new");
  await expect(page.getByTestId("starts-zone")).toContainText("UTC");
  await expect(page.getByLabel("Starts")).not.toHaveValue("");
  await page.getByLabel("Description (optional)").fill("Agenda: the plan, then questions");
  await page.getByLabel("Starts").fill("2031-05-06T07:30");
  await page.getByLabel("Duration in minutes").fill("45");
  await page.getByLabel("Guests without an account may join").uncheck();
  await page.getByLabel("Media", { exact: true }).selectOption({ label: "Media server always" });
  await page.getByRole("button", { name: "Schedule" }).click();
  await expectNoJsonPage(page);
  await expect(page).toHaveURL(/\/meetings\/new/);
  await expect(page.locator('[data-field-error="title"]')).not.toHaveText("");
  await expect(page.getByLabel("Description (optional)")).toHaveValue("Agenda: the plan, then questions");
  await expect(page.getByLabel("Starts")).toHaveValue("2031-05-06T07:30");
  await expect(page.getByLabel("Duration in minutes")).toHaveValue("45");
  await expect(page.getByLabel("Guests without an account may join")).not.toBeChecked();
  await expect(page.getByLabel("Waiting room: people knock and a host lets them in")).toBeChecked();
  await expect(page.getByLabel("Media", { exact: true })).toHaveValue("server");
  // Sent again with a title, as it came back, it is scheduled as typed.
  await page.getByLabel("Title").fill("Kept values");
  await page.getByRole("button", { name: "Schedule" }).click();
  await expectNoJsonPage(page);
  await expect(page).toHaveURL(/\/m\/[A-Za-z0-9_-]+$/);
  await expect(page.getByRole("heading", { name: "Kept values" })).toBeVisible();
  await expect(page.locator("time[datetime]").first()).toHaveAttribute("datetime", "2031-05-06T07:30:00Z");

  // The browser's code once told the server the zone (a cookie): the form
  // now reads the local time there. 10:00 in Seoul is 01:00 UTC.
  const origin = new URL(page.url()).origin;
  await context.addCookies([{ name: "moim_tz", value: "Asia%2FSeoul", url: origin }]);
  await page.goto("/meetings/new");
  await expect(page.getByTestId("starts-zone")).toContainText("Asia/Seoul");
  await page.getByLabel("Title").fill("Plain planning");
  await page.getByLabel("Starts").fill("2031-03-04T10:00");
  await page.getByRole("button", { name: "Schedule" }).click();
  await expectNoJsonPage(page);
  await expect(page).toHaveURL(/\/m\/[A-Za-z0-9_-]+$/);
  await expect(page.getByRole("heading", { name: "Plain planning" })).toBeVisible();
  const when = page.locator("time[datetime]").first();
  await expect(when).toHaveAttribute("datetime", "2031-03-04T01:00:00Z");

  // Editing without a change keeps the start; a new title is saved.
  const meetingUrl = page.url();
  await page.goto(`${meetingUrl}/edit`);
  await expect(page.getByLabel("Starts")).toHaveValue("2031-03-04T10:00");
  await expect(page.getByLabel("Title")).toHaveValue("Plain planning");
  await page.getByLabel("Title").fill("Plain planning, moved");
  await page.getByRole("button", { name: "Save changes" }).click();
  await expectNoJsonPage(page);
  await expect(page).toHaveURL(meetingUrl);
  await expect(page.getByRole("heading", { name: "Plain planning, moved" })).toBeVisible();
  await expect(page.locator("time[datetime]").first()).toHaveAttribute("datetime", "2031-03-04T01:00:00Z");
});

test("guest name, profile, co-hosts and a knock decision as plain forms", async ({ page, browser }) => {
  // A guest name, refused when empty and taken when given.
  await page.goto("/guest?next=/meetings");
  await page.getByRole("button", { name: "Continue as guest" }).click();
  await expectNoJsonPage(page);
  await expect(page).toHaveURL(/\/guest/);
  await expect(page.locator('[data-field-error="display_name"]')).not.toHaveText("");
  await page.context().clearCookies();

  // An account: its display name changed on the profile page.
  const username = uniqueName("plainprof");
  await page.goto("/signup?next=/profile");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill("Before");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/profile$/);
  const profile = page.getByTestId("profile-form");
  await profile.getByLabel("Display name").fill("   ");
  await profile.getByRole("button", { name: "Save" }).click();
  await expectNoJsonPage(page);
  await expect(page.locator('[data-testid="profile-form"] [data-field-error="display_name"]')).not.toHaveText("");
  await page.getByTestId("profile-form").getByLabel("Display name").fill("After");
  await page.getByTestId("profile-form").getByRole("button", { name: "Save" }).click();
  await expectNoJsonPage(page);
  await expect(page.getByTestId("viewer-name")).toHaveText("After");

  // A meeting with a waiting room: co-hosts refused for a name nobody has,
  // then set.
  // (An instant one, so someone can knock now.)
  const origin = new URL(page.url()).origin;
  const made = await page.request.post("/api/schedule_meeting", {
    headers: { origin },
    form: { title: "Plain door", instant: "1", waiting_room: "on", allow_guests: "on" },
  });
  expect(made.status()).toBe(200);
  const meetingUrl = `${origin}/m/${await made.json()}`;
  await page.goto(meetingUrl);
  const cohosts = page.getByTestId("cohosts-form");
  await cohosts.getByLabel("Co-hosts").fill("nobody-by-this-name");
  await cohosts.getByRole("button").click();
  await expectNoJsonPage(page);
  await expect(page.locator('[data-testid="cohosts-form"] [data-field-error="cohosts"]')).toContainText("nobody-by-this-name");
  const helperName = uniqueName("plaincohost");
  const helper = await browser.newContext();
  const signedUp = await helper.request.post(`${origin}/api/sign_up`, {
    headers: { origin },
    form: { username: helperName, display_name: "Helper", email: "", password: PASSWORD },
  });
  expect(signedUp.status()).toBe(200);
  await helper.close();
  await page.getByTestId("cohosts-form").getByLabel("Co-hosts").fill(helperName);
  await page.getByTestId("cohosts-form").getByRole("button").click();
  await expectNoJsonPage(page);
  await expect(page.getByTestId("meeting-cohosts")).toContainText(helperName);

  // Someone knocks (with JavaScript); the host admits them with a plain form.
  const guest = await browser.newContext({ javaScriptEnabled: true });
  const door = await guest.newPage();
  await door.goto(`${meetingUrl}/join`);
  await expect(door.locator("body")).toHaveAttribute("data-hydrated", "true");
  await door.getByLabel("Your name").fill("Plain Knocker");
  await door.getByTestId("lobby-enter").click();
  await expect(door.getByTestId("lobby-waiting")).toBeVisible();
  await page.goto(meetingUrl);
  const knock = page.getByTestId("knock").filter({ hasText: "Plain Knocker" });
  await knock.getByTestId("admit").click();
  await expectNoJsonPage(page);
  // Back on the meeting page (the framework leaves an empty "?").
  expect(page.url().replace(/\?$/, "")).toBe(meetingUrl);
  await expect(door).toHaveURL(/\/room(\?|$)/, { timeout: 10_000 });
  await guest.close();
});
