import { test, expect, hydrated } from "./fixtures";

test("the landing page is server-rendered, hydrates and switches language", async ({ page, request }) => {
  // Without any JavaScript: the HTML already carries the content.
  const raw = await request.get("/", { headers: { "accept-language": "en-US" } });
  expect(raw.status()).toBe(200);
  const html = await raw.text();
  expect(html).toContain("Meet face to face, on your own server");
  expect(html).toMatch(/\/pkg\/[0-9a-f]{16}\/moim\.js/);

  await page.goto("/");
  await expect(page.getByTestId("home-title")).toHaveText("Meet face to face, on your own server");
  await hydrated(page);

  // The language switch only works once the wasm runs.
  await page.getByTestId("lang-switch").click();
  await expect(page.getByTestId("home-title")).toHaveText("내 서버에서, 얼굴을 보며 만나세요");
  await expect(page.locator("html")).toHaveAttribute("lang", "ko");
  await expect(page.getByTestId("nav-sign-in")).toHaveText("로그인");

  // The choice is remembered across a reload.
  await page.reload();
  await expect(page.getByTestId("home-title")).toHaveText("내 서버에서, 얼굴을 보며 만나세요");
  await hydrated(page);
  await page.getByTestId("lang-switch").click();
  await expect(page.getByTestId("home-title")).toHaveText("Meet face to face, on your own server");
});

test("Korean is chosen from the browser's language", async ({ browser }) => {
  const context = await browser.newContext({ locale: "ko-KR" });
  const page = await context.newPage();
  await page.goto("/");
  await expect(page.getByTestId("home-title")).toHaveText("내 서버에서, 얼굴을 보며 만나세요");
  await context.close();
});

test("an unknown address shows the 404 page", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Page not found");
  await hydrated(page);
  await page.getByRole("link", { name: "Back to the home page" }).click();
  await expect(page).toHaveURL("/");
});

test("keyboard users can skip to the content", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.keyboard.press("Tab");
  const skip = page.getByRole("link", { name: "Skip to content" });
  await expect(skip).toBeFocused();
});
