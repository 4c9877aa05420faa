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

test("the language chosen on any page holds on every page, for a year", async ({ page }) => {
  // Chosen on a page deep in the site, not the home page.
  const deep = await page.goto("/no/such/page");
  expect(deep?.status()).toBe(404);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Page not found");
  await hydrated(page);
  await page.getByTestId("lang-switch").click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("페이지를 찾을 수 없습니다");

  // One cookie for the whole site, kept after the browser closes; the
  // server never set one of its own from the browser's language.
  const cookies = (await page.context().cookies()).filter((c) => c.name === "i18n_pref_locale");
  expect(cookies).toHaveLength(1);
  expect(cookies[0]).toMatchObject({ value: "ko", path: "/", sameSite: "Lax" });
  expect(cookies[0].expires * 1000).toBeGreaterThan(Date.now() + 300 * 24 * 3600 * 1000);

  // The server renders the other pages in it.
  await page.goto("/");
  await expect(page.getByTestId("home-title")).toHaveText("내 서버에서, 얼굴을 보며 만나세요");
  await expect(page.locator("html")).toHaveAttribute("lang", "ko");
  await hydrated(page);
  await page.getByTestId("lang-switch").click();
  await expect(page.getByTestId("home-title")).toHaveText("Meet face to face, on your own server");
  await page.goto("/no/such/page");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Page not found");
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

test("the camera and call code is loaded only by the pages that use it", async ({ page, request }) => {
  // A split page names its chunks for preloading in its head; the home page
  // (all in the main bundle) names none.
  const preloads = async (path: string) =>
    [...(await (await request.get(path)).text()).matchAll(/<link rel="preload" href="\/pkg\/[0-9a-f]{16}\/([\w.]+\.wasm)"/g)].map(
      (match) => match[1],
    );
  expect(await preloads("/")).toEqual(["moim.wasm"]);
  const selftestPreloads = await preloads("/selftest");
  expect(selftestPreloads).toContain("moim.wasm");
  expect(selftestPreloads.some((name) => name.startsWith("split_call_page_"))).toBe(true);
  // The sign-in page brings its own chunk, not the profile's nor the
  // sign-up, guest and verification pages' (their own chunk).
  const signInPreloads = await preloads("/signin");
  expect(signInPreloads.some((name) => name.startsWith("split_sign_in_page_"))).toBe(true);
  expect(signInPreloads.some((name) => name.startsWith("split_profile_page_"))).toBe(false);
  expect(signInPreloads.some((name) => name.startsWith("split_sign_up_page_"))).toBe(false);
  const signUpPreloads = await preloads("/signup");
  expect(signUpPreloads.some((name) => name.startsWith("split_sign_up_page_"))).toBe(true);
  expect(signUpPreloads.some((name) => name.startsWith("split_sign_in_page_"))).toBe(false);

  // Which of the bundle's wasm files the page fetched (cached or not).
  const wasmFetched = (p: typeof page) => {
    const names: string[] = [];
    p.on("response", (response) => {
      const path = new URL(response.url()).pathname;
      if (path.startsWith("/pkg/") && path.endsWith(".wasm")) names.push(path.split("/").pop() ?? "");
    });
    return names;
  };
  // A first visit to the home page: the main bundle only.
  const onHome = wasmFetched(page);
  await page.goto("/");
  await hydrated(page);
  expect(onHome).toEqual(["moim.wasm"]);

  // The self-test uses the camera, the microphone and WebRTC: its code comes
  // in chunks of its own, and with them the page works.
  const selftest = await page.context().newPage();
  const onSelftest = wasmFetched(selftest);
  await selftest.goto("/selftest");
  await hydrated(selftest);
  expect(onSelftest).toContain("moim.wasm");
  expect(onSelftest.length, `wasm files: ${onSelftest.join(", ")}`).toBeGreaterThan(1);
  // Each file fetched once: the preloaded copy is the one the loader used.
  expect(new Set(onSelftest).size, `wasm files: ${onSelftest.join(", ")}`).toBe(onSelftest.length);
  expect(onSelftest.sort()).toEqual(selftestPreloads.sort());
  await selftest.getByRole("button", { name: "Start camera and microphone" }).click();
  await expect(selftest.getByTestId("selftest-camera")).toContainText("Your camera works");
  await selftest.close();
});
