import { test, expect, hydrated, uniqueName } from "./fixtures";
import type { Page } from "@playwright/test";

const PASSWORD = "a long enough password";
const SECRET_LABEL = "Signing secret for this webhook (shown only now: copy it)";
const URL_PRIVATE =
  "This address is on a private network; webhooks are only sent to public addresses.";
const URL_INVALID = "Enter an https:// address, without a user name or password in it.";

test.use({ locale: "en-US" });

/** Signs a fresh user up through the form and lands on the profile page. */
async function signUpToProfile(page: Page): Promise<string> {
  const username = uniqueName("hook");
  await page.goto("/signup?next=/profile");
  await hydrated(page);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill(`Hook ${username.slice(-4)}`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-username")).toHaveText(username);
  await hydrated(page);
  return username;
}

test("a private or non-https address is refused next to the URL field and nothing is added", async ({ page }) => {
  await signUpToProfile(page);
  const card = page.getByTestId("webhooks");
  await expect(card.getByRole("heading", { name: "Webhooks", exact: true })).toBeVisible();
  await expect(card.getByTestId("webhooks-empty")).toHaveText("No webhooks yet.");

  const url = card.getByLabel("Endpoint URL", { exact: true });
  const fieldError = card.locator('[data-field-error="url"]');

  await url.fill("https://127.0.0.1/hook");
  await card.getByRole("button", { name: "Add webhook" }).click();
  await expect(fieldError).toHaveText(URL_PRIVATE);
  await expect(url).toHaveAttribute("aria-invalid", "true");
  await expect(url).toHaveAccessibleDescription(new RegExp(URL_PRIVATE.replace(/[.;]/g, "\\$&")));
  await expect(card.getByLabel(SECRET_LABEL)).toHaveCount(0);
  await expect(card.getByTestId("webhook")).toHaveCount(0);
  await expect(card.getByTestId("webhooks-empty")).toBeVisible();

  await url.fill("http://hooks.example.org/x");
  await card.getByRole("button", { name: "Add webhook" }).click();
  await expect(fieldError).toHaveText(URL_INVALID);
  await expect(url).toHaveAttribute("aria-invalid", "true");
  await expect(card.getByLabel(SECRET_LABEL)).toHaveCount(0);
  await expect(card.getByTestId("webhook")).toHaveCount(0);

  // Nothing was stored either.
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId("webhooks-empty")).toHaveText("No webhooks yet.");
  await expect(page.getByTestId("webhook")).toHaveCount(0);
});

test("a webhook added on the profile page shows its secret once and can be removed", async ({ page }) => {
  await signUpToProfile(page);
  const card = page.getByTestId("webhooks");
  await expect(card.getByTestId("webhooks-empty")).toHaveText("No webhooks yet.");
  await expect(card.getByRole("heading", { name: "Recent deliveries" })).toBeVisible();
  await expect(card.getByText("Nothing sent yet.")).toBeVisible();

  const endpoint = "https://hooks.example.org/moim";
  await card.getByLabel("Endpoint URL", { exact: true }).fill(endpoint);
  await card.getByRole("button", { name: "Add webhook" }).click();

  // Shown once, in a labelled read-only field.
  const shown = card.getByLabel(SECRET_LABEL);
  await expect(shown).toHaveValue(/^whsec_\S+$/);
  await expect(shown).toHaveAttribute("readonly", "");
  await expect(card.getByTestId("new-webhook-secret")).toHaveValue(/^whsec_/);
  const secret = await shown.inputValue();
  await expect(card.locator('[data-field-error="url"]')).toHaveText("");
  await expect(card.getByTestId("webhook")).toHaveCount(1);
  await expect(card.getByTestId("webhook")).toContainText(endpoint);

  // After a reload the endpoint is listed by its URL; the secret is nowhere.
  await page.reload();
  await hydrated(page);
  const row = card.getByTestId("webhook");
  await expect(row).toHaveCount(1);
  await expect(row.locator(".token-name")).toHaveText(endpoint);
  await expect(card.getByTestId("webhooks-empty")).toHaveCount(0);
  await expect(card.getByLabel(SECRET_LABEL)).toHaveCount(0);
  await expect(card.getByTestId("new-webhook-secret")).toHaveCount(0);
  expect(await page.locator("body").innerText()).not.toContain(secret);
  expect(await page.content()).not.toContain(secret);
  await expect(card.getByRole("heading", { name: "Recent deliveries" })).toBeVisible();
  await expect(card.getByText("Nothing sent yet.")).toBeVisible();

  await card.getByRole("button", { name: `Remove webhook ${endpoint}` }).click();
  await expect(card.getByText("Webhook removed.")).toBeVisible();
  await expect(card.getByTestId("webhooks-empty")).toHaveText("No webhooks yet.");
  await expect(card.getByTestId("webhook")).toHaveCount(0);

  // Gone for good.
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId("webhooks-empty")).toHaveText("No webhooks yet.");
  await expect(page.getByTestId("webhook")).toHaveCount(0);
});
