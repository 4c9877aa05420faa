import { test, expect, hydrated, uniqueName } from "./fixtures";
import type { Page } from "@playwright/test";

const PASSWORD = "a long enough password";

test.use({ locale: "en-US" });

/** Signs a fresh user up through the form and lands on the profile page. */
async function signUpToProfile(page: Page): Promise<string> {
  const username = uniqueName("tok");
  await page.goto("/signup?next=/profile");
  await hydrated(page);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill(`Token ${username.slice(-4)}`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-username")).toHaveText(username);
  await hydrated(page);
  return username;
}

/** A meeting an hour from now, as a script would ask for it. */
function meetingRequest(token: string, title: string) {
  return {
    headers: { Authorization: `Bearer ${token}` },
    data: { title, starts_at_ms: Date.now() + 60 * 60 * 1000 },
  };
}

test("a token made on the profile page works for the API until it is revoked", async ({ page, request }) => {
  await signUpToProfile(page);
  const card = page.getByTestId("api-tokens");
  await expect(card.getByRole("heading", { name: "API tokens" })).toBeVisible();
  await expect(card.getByTestId("api-tokens-empty")).toHaveText("No API tokens yet.");

  await card.getByLabel("Token name", { exact: true }).fill("calendar sync");
  await card
    .getByLabel("Access", { exact: true })
    .selectOption({ label: "Read and manage meetings (create, change, cancel)" });
  await card.getByRole("button", { name: "Create token" }).click();

  // Shown once, in a labelled read-only field.
  const shown = card.getByLabel("Your new token (shown only now: copy it)");
  await expect(shown).toHaveValue(/^moim_[A-Za-z0-9_-]{43}$/);
  const token = await shown.inputValue();
  await expect(card.getByTestId("api-token")).toHaveCount(1);
  await expect(card.getByTestId("api-token")).toContainText("calendar sync");
  await expect(card.getByTestId("api-token")).toContainText("read and manage");

  // A script with the token (and no cookies) makes a meeting.
  const title = "Planned by a script";
  const created = await request.post("/api/v1/meetings", meetingRequest(token, title));
  expect(created.status()).toBe(201);
  const meeting = await created.json();
  expect(meeting.title).toBe(title);
  expect(meeting.role).toBe("Host");
  expect(meeting.code).toMatch(/^[a-z2-9]{26}$/);

  // After a reload the token is listed by name; its secret is nowhere.
  await page.reload();
  await hydrated(page);
  const row = card.getByTestId("api-token");
  await expect(row).toHaveCount(1);
  await expect(row.locator(".token-name")).toHaveText("calendar sync");
  await expect(card.getByLabel("Your new token (shown only now: copy it)")).toHaveCount(0);
  expect(await page.locator("body").innerText()).not.toContain(token);
  expect(await page.content()).not.toContain(token);

  await card.getByRole("button", { name: "Revoke token calendar sync" }).click();
  await expect(card.getByText("Token revoked.")).toBeVisible();
  await expect(card.getByTestId("api-tokens-empty")).toHaveText("No API tokens yet.");
  await expect(card.getByTestId("api-token")).toHaveCount(0);

  // It stops working at once.
  const refused = await request.post("/api/v1/meetings", meetingRequest(token, "Too late"));
  expect(refused.status()).toBe(401);
  expect(refused.headers()["www-authenticate"]).toContain("Bearer");
  const body = await refused.json();
  expect(body.error.code).toBe("unauthorized");
});

test("a token without a name is refused next to the name field and nothing is made", async ({ page }) => {
  await signUpToProfile(page);
  const card = page.getByTestId("api-tokens");
  await expect(card.getByTestId("api-tokens-empty")).toBeVisible();

  const name = card.getByLabel("Token name", { exact: true });
  await name.fill("");
  await card.getByRole("button", { name: "Create token" }).click();

  await expect(card.locator('[data-field-error="name"]')).toHaveText("This field is required.");
  await expect(name).toHaveAttribute("aria-invalid", "true");
  await expect(name).toHaveAccessibleDescription(/This field is required\./);
  await expect(card.getByLabel("Your new token (shown only now: copy it)")).toHaveCount(0);
  await expect(card.getByTestId("api-token")).toHaveCount(0);
  await expect(card.getByTestId("api-tokens-empty")).toBeVisible();

  // Nothing was stored either.
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId("api-tokens-empty")).toHaveText("No API tokens yet.");
  await expect(page.getByTestId("api-token")).toHaveCount(0);
});
