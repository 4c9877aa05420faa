import { test as base, expect, type Page } from "@playwright/test";

/**
 * Collects console errors and page errors of a page; the test fails on any.
 * Two kinds of "Failed to load resource" lines are answers the test asked
 * for, not faults: a 4xx from a server function (a refused sign-in, a
 * validation error: the UI shows it) and the 404 of a page that does not
 * exist. Everything else (panics, missing files, 5xx) counts.
 */
export function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    const url = message.location().url ?? "";
    const clientError = /status of 4\d\d/.test(text) && text.startsWith("Failed to load resource");
    if (clientError && new URL(url, "http://x").pathname.startsWith("/api/")) return;
    if (clientError && text.includes("404") && url === page.url()) return;
    errors.push(`${text} (${url})`);
  });
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  return errors;
}

export const test = base.extend<{ consoleErrors: string[] }>({
  consoleErrors: [
    async ({ page }, use) => {
      const errors = watchConsole(page);
      await use(errors);
      expect(errors, "console errors on the page").toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/**
 * Waits until the wasm has hydrated the page. `timeout` is for pages opened
 * while other browsers on the same small machine are in a call: compiling
 * the bundle then competes with their encoders and decoders.
 */
export async function hydrated(page: Page, timeout?: number): Promise<void> {
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true", { timeout });
}

export function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}
