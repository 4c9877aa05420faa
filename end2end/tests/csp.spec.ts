import { test, expect, hydrated } from "./fixtures";

declare global {
  interface Window {
    cspViolations: string[];
  }
}

test("pages hydrate under a strict Content-Security-Policy without a violation", async ({ page }) => {
  // Installed by the browser's debugging protocol, which the policy does not govern.
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const response = await page.goto("/");
  const csp = response?.headers()["content-security-policy"] ?? "";
  const scriptSrc = csp.split(";").map((d) => d.trim()).find((d) => d.startsWith("script-src ")) ?? "";
  expect(scriptSrc).toMatch(/'nonce-[A-Za-z0-9_-]{22,}'/);
  expect(scriptSrc).not.toContain("unsafe-inline");
  expect(csp).toContain("default-src 'self'");

  // Hydration ran under the policy, and so do click handlers.
  await hydrated(page);
  await page.getByTestId("lang-switch").click();
  await expect(page.getByTestId("home-title")).toHaveText("내 서버에서, 얼굴을 보며 만나세요");
  await page.getByTestId("lang-switch").click();
  await expect(page.getByTestId("home-title")).toHaveText("Meet face to face, on your own server");

  // A client-side navigation and a server-rendered page of another kind.
  await page.goto("/signin");
  await hydrated(page);

  expect(await page.evaluate(() => window.cspViolations)).toEqual([]);
});
