import { test, expect, hydrated, uniqueName, watchConsole } from "./fixtures";
import { PASSWORD, RECORD_PEER_CONNECTIONS } from "./call-helpers";
import type { Browser, BrowserContext, Locator, Page } from "@playwright/test";

/**
 * moim on a phone: an iPhone 13-sized screen (390×844 CSS px, touch).
 * Playwright's devices["iPhone 13"] is a WebKit profile and only Chromium
 * is installed here, so its settings are spelled out for Chromium.
 * Nothing may scroll sideways, and what a finger taps in the call, the
 * lobby and the chat is at least 44×44 CSS px (WCAG 2.5.5).
 */

const PHONE = {
  viewport: { width: 390, height: 844 },
  screen: { width: 390, height: 844 },
  deviceScaleFactor: 3,
  isMobile: true,
  hasTouch: true,
  locale: "en-US",
  timezoneId: "Asia/Seoul",
};
const MIN_TARGET = 44;

test.use(PHONE);
test.describe.configure({ timeout: 120_000 });

async function phone(browser: Browser): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser.newContext(PHONE);
  await context.addInitScript(RECORD_PEER_CONNECTIONS);
  const page = await context.newPage();
  return { context, page, errors: watchConsole(page) };
}

async function signUp(page: Page, label: string): Promise<string> {
  await page.goto("/");
  const origin = new URL(page.url()).origin;
  const name = uniqueName(label);
  const response = await page.request.post("/api/sign_up", {
    headers: { origin },
    form: { username: name, display_name: name, email: "", password: PASSWORD },
  });
  expect(response.status()).toBe(200);
  return name;
}

async function schedule(page: Page, form: Record<string, string>): Promise<string> {
  const origin = new URL(page.url()).origin;
  const response = await page.request.post("/api/schedule_meeting", {
    headers: { origin },
    form: { title: "Phone check", max_participants: "6", ...form },
  });
  expect(response.status()).toBe(200);
  return `/m/${await response.json()}`;
}

/** The page is no wider than the screen: nothing scrolls sideways. */
async function expectNoSidewaysScroll(page: Page, screen: string): Promise<void> {
  const size = await page.evaluate(() => {
    const root = document.documentElement;
    // What sticks out, to say where to look.
    const wide = Array.from(document.querySelectorAll<HTMLElement>("body *"))
      .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 0.5)
      .slice(0, 8)
      .map((el) => `${el.tagName.toLowerCase()}.${el.className} (right ${Math.round(el.getBoundingClientRect().right)})`);
    return { scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, wide };
  });
  expect(size.clientWidth, "the layout viewport is the phone's width").toBe(PHONE.viewport.width);
  expect(size.scrollWidth, `${screen} scrolls sideways; too wide: ${size.wide.join(", ")}`).toBeLessThanOrEqual(size.clientWidth);
}

/**
 * Every visible button, link, input, select and textarea in `scope` that
 * is smaller than 44×44 CSS px.
 *
 * Exempt, as WCAG 2.5.5 exempts them: links inline in a sentence (a link in
 * a chat message or a paragraph is as tall as the line of text it sits in).
 * A checkbox or radio inside its <label> is measured by that label, since
 * the whole label is what a finger taps.
 */
async function smallTargets(scope: Locator): Promise<string[]> {
  return scope.evaluate((root, min) => {
    const describe = (el: Element) =>
      `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}${el.getAttribute("data-testid") ? `[data-testid=${el.getAttribute("data-testid")}]` : ""} "${(el.textContent ?? "").trim().slice(0, 24)}"`;
    const inlineInText = (el: HTMLElement) => {
      if (el.tagName !== "A" || getComputedStyle(el).display !== "inline") return false;
      const parent = el.parentElement;
      if (!parent) return false;
      // Text beside the link in the same block: it is part of a sentence.
      const beside = Array.from(parent.childNodes)
        .filter((n) => n !== el)
        .map((n) => n.textContent ?? "")
        .join("")
        .trim();
      return beside.length > 0;
    };
    const out: string[] = [];
    for (const el of Array.from(root.querySelectorAll<HTMLElement>("a[href], button, input:not([type=hidden]), select, textarea, summary"))) {
      const style = getComputedStyle(el);
      if (el.getClientRects().length === 0 || style.visibility === "hidden") continue;
      if (inlineInText(el)) continue;
      let target: Element = el;
      const type = (el as HTMLInputElement).type;
      if (el.tagName === "INPUT" && (type === "checkbox" || type === "radio")) {
        target = el.closest("label") ?? el;
      }
      const box = target.getBoundingClientRect();
      if (box.width < min - 0.5 || box.height < min - 0.5) {
        out.push(`${describe(el)} is ${Math.round(box.width * 10) / 10}×${Math.round(box.height * 10) / 10}`);
      }
    }
    return out;
  }, MIN_TARGET);
}

test("the meetings list, the schedule form and a meeting's page fit a phone", async ({ page }) => {
  await signUp(page, "phone");
  const path = await schedule(page, { title: "A rather long meeting title that has to wrap on a small screen", instant: "1" });

  await page.goto("/meetings");
  await hydrated(page);
  await expect(page.getByTestId("meeting-card")).toHaveCount(1);
  await expectNoSidewaysScroll(page, "the meetings list");

  await page.goto("/meetings/new");
  await hydrated(page);
  await expect(page.getByTestId("meeting-form")).toBeVisible();
  await expectNoSidewaysScroll(page, "the schedule form");
  // With every field's error shown too.
  await page.getByTestId("meeting-submit").click();
  await expect(page.locator('[data-field-error="title"]')).not.toBeEmpty();
  await expectNoSidewaysScroll(page, "the schedule form with errors");

  await page.goto(path);
  await hydrated(page);
  await expectNoSidewaysScroll(page, "a meeting's page");
});

test("the lobby fits a phone and its controls are finger-sized", async ({ page, browser }) => {
  await signUp(page, "door");
  const path = await schedule(page, { instant: "1", waiting_room: "on", allow_guests: "on" });

  const guest = await phone(browser);
  await guest.page.goto(`${path}/join`);
  await hydrated(guest.page);
  const preview = guest.page.getByTestId("preview-video");
  await expect.poll(() => preview.evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
  await expect.poll(() => guest.page.locator("#device-camera option").count()).toBeGreaterThan(0);
  await expect(preview).toBeInViewport();

  await expectNoSidewaysScroll(guest.page, "the lobby");
  expect(await smallTargets(guest.page.locator(".lobby")), "lobby targets under 44×44").toEqual([]);

  await guest.page.locator("#lobby-name").fill("Guest on a phone");
  await guest.page.getByTestId("lobby-enter").tap();
  await expect(guest.page.getByTestId("lobby-waiting")).toBeVisible();
  await expectNoSidewaysScroll(guest.page, "the lobby, waiting");

  expect(guest.errors).toEqual([]);
  await guest.context.close();
});

test("the call fits a phone: grid, controls and chat, all finger-sized", async ({ browser }) => {
  const host = await phone(browser);
  const guest = await phone(browser);
  await signUp(host.page, "ann");
  const guestName = await signUp(guest.page, "bob");
  const path = await schedule(host.page, { instant: "1", invitees: guestName });

  for (const p of [host, guest]) {
    await p.page.goto(`${path}/join`);
    await hydrated(p.page);
    await p.page.getByTestId("lobby-enter").tap();
    await expect(p.page.getByTestId("call")).toHaveAttribute("data-phase", "live");
  }
  const page = host.page;
  await expect(page.locator('[data-testid="tile"]')).toHaveCount(2);

  // The grid: both tiles side by side or stacked, inside the screen.
  const grid = page.getByTestId("grid");
  await expect(grid).toBeVisible();
  for (const tile of await page.locator('[data-testid="tile"]').all()) {
    const box = (await tile.boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(PHONE.viewport.width);
  }
  const controls = page.locator(".controls");
  await expect(controls).toBeVisible();
  await expectNoSidewaysScroll(page, "the call");
  expect(await smallTargets(controls), "call controls under 44×44").toEqual([]);

  // The chat panel, with a message that holds a link.
  await page.getByTestId("chat-button").tap();
  const chat = page.getByTestId("chat-panel");
  await expect(chat).toBeVisible();
  await chat.getByTestId("chat-input").fill("The agenda: https://example.org/a-very-long-path/that-should-wrap-instead-of-widening-the-page");
  await chat.getByTestId("chat-send").tap();
  await expect(chat.getByTestId("chat-message").last()).toHaveAttribute("data-status", "sent");
  await chat.scrollIntoViewIfNeeded();
  await expectNoSidewaysScroll(page, "the call with the chat open");
  expect(await smallTargets(chat), "chat targets under 44×44").toEqual([]);

  // The people panel and the host's actions in it; everything in the call.
  await page.getByTestId("people-button").tap();
  await expect(page.getByTestId("people-panel").getByTestId("ask-mute")).toBeVisible();
  await expectNoSidewaysScroll(page, "the call with people and chat open");
  expect(await smallTargets(page.getByTestId("call")), "call page targets under 44×44").toEqual([]);

  // The guest's unread badge does not widen their controls off the screen.
  await expect(guest.page.getByTestId("chat-unread")).toHaveText("1");
  await expectNoSidewaysScroll(guest.page, "the call with an unread badge");
  expect(await smallTargets(guest.page.locator(".controls")), "guest's call controls under 44×44").toEqual([]);

  for (const p of [host, guest]) {
    expect(p.errors).toEqual([]);
    await p.context.close();
  }
});
