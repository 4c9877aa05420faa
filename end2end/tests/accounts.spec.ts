import { test, expect, hydrated, uniqueName } from "./fixtures";

const PASSWORD = "a long enough password";

test("sign up, see your name, sign out, sign in again, and come back to a protected page", async ({ page }) => {
  const username = uniqueName("ann");
  const displayName = `Ann ${username.slice(-4)}`;

  // A protected page sends a stranger to sign in, remembering where to return.
  await page.goto("/meetings");
  await expect(page).toHaveURL(/\/signin\?next=\/meetings$/);
  await hydrated(page);

  await page.getByRole("link", { name: "Sign up" }).last().click();
  await expect(page).toHaveURL(/\/signup\?next=\/meetings$/);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill(displayName);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();

  await expect(page).toHaveURL(/\/meetings$/);
  await expect(page.getByTestId("meetings-title")).toBeVisible();
  await expect(page.getByTestId("viewer-name")).toHaveText(displayName);

  await page.getByTestId("sign-out").click();
  await expect(page.getByTestId("nav-sign-in")).toBeVisible();
  await expect(page.getByTestId("viewer-name")).toHaveCount(0);

  // The profile page needs a user: sign in, then land back on it.
  await page.goto("/profile");
  await expect(page).toHaveURL(/\/signin\?next=\/profile$/);
  await hydrated(page);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("form-error")).toHaveText("Incorrect username or password.");

  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-username")).toHaveText(username);
  await expect(page.getByTestId("viewer-name")).toHaveText(displayName);

  // A reload keeps the session (server-side, cookie only).
  await page.reload();
  await expect(page.getByTestId("profile-username")).toHaveText(username);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "moim.sid");
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe("Lax");
});

test("bad sign-up input is explained next to each field", async ({ page }) => {
  await page.goto("/signup");
  await hydrated(page);
  await page.getByLabel("Username").fill("x y");
  await page.getByLabel("Display name").fill("   ");
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();

  await expect(page.locator('[data-field-error="username"]')).toContainText("Use only letters");
  await expect(page.locator('[data-field-error="display_name"]')).toHaveText("This field is required.");
  await expect(page.locator('[data-field-error="password"]')).toHaveText("This is too short.");
  await expect(page.getByLabel("Username")).toHaveAttribute("aria-invalid", "true");
  await expect(page).toHaveURL(/\/signup$/);
});

test("a guest gets a name and is marked as a guest; markup in it stays text", async ({ page }) => {
  await page.goto("/guest");
  await hydrated(page);
  await page.getByLabel("Display name").fill("<img src=x onerror=alert(1)>Kim");
  await page.getByRole("button", { name: "Continue as guest" }).click();
  await expect(page.getByTestId("viewer-name")).toContainText("<img src=x onerror=alert(1)>Kim");
  await expect(page.getByTestId("viewer-name")).toContainText("guest");
  await expect(page.locator(".site-header img")).toHaveCount(0);
});

test("what someone types before the page is interactive is still there after", async ({ page }) => {
  // A slow network: the page's code arrives only after the person started
  // typing. Becoming interactive must not wipe the field.
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/pkg/**/*.wasm", async (route) => {
    await held;
    await route.continue();
  });
  await page.goto("/signup", { waitUntil: "domcontentloaded" });
  await page.getByLabel("Username").fill("early_typist");
  await page.getByLabel("Display name").fill("Early Typist");
  // Sent before the code arrived: a plain post, refused (password too
  // short), and back on the form as typed, the reason beside the field.
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(/\/signup\?.*__err=/, { waitUntil: "domcontentloaded" });
  await expect(page.locator('[data-field-error="password"]')).not.toHaveText("");
  await expect(page.getByLabel("Username")).toHaveValue("early_typist");
  await page.getByLabel("Display name").fill("Early Typist, again");
  await expect(page.locator("body")).not.toHaveAttribute("data-hydrated", "true");
  release();
  await hydrated(page);
  // Becoming interactive keeps both what came back and what was typed.
  await expect(page.getByLabel("Username")).toHaveValue("early_typist");
  await expect(page.getByLabel("Display name")).toHaveValue("Early Typist, again");
  await expect(page.locator('[data-field-error="password"]')).not.toHaveText("");
  // And the form now works as the page's own.
  await page.getByLabel("Username").fill(uniqueName("early"));
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByTestId("viewer-name")).toHaveText("Early Typist, again");
});
