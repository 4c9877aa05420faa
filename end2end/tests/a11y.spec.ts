import AxeBuilder from "@axe-core/playwright";
import { test, expect, hydrated, uniqueName, watchConsole } from "./fixtures";
import { PASSWORD, RECORD_PEER_CONNECTIONS } from "./call-helpers";
import type { Browser, BrowserContext, Page } from "@playwright/test";

/**
 * Accessibility (WCAG 2.0/2.1, A and AA) of every screen, in both languages
 * and both themes, checked with axe-core. A page passes when axe finds no
 * violation of impact "serious" or "critical"; each one found is printed
 * with its rule, impact and the elements it is about.
 */

test.describe.configure({ timeout: 240_000 });

const TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/** What axe found on one screen, one line per violation. */
async function axeProblems(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page })
    // Label in name (WCAG 2.5.3) is tagged "experimental" in axe, so it is
    // off unless asked for; a user reported exactly this, so it is on.
    .options({ rules: { "label-content-name-mismatch": { enabled: true } } })
    .withTags(TAGS)
    .analyze();
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => {
      const nodes = v.nodes
        .map((n) => `    ${n.target.join(" ")}${n.failureSummary ? `\n      ${n.failureSummary.replace(/\n/g, "\n      ")}` : ""}`)
        .join("\n");
      return `${v.id} (${v.impact}, ${v.nodes.length} node${v.nodes.length === 1 ? "" : "s"}): ${v.help}\n${nodes}`;
    });
}

interface Variant {
  language: "English" | "Korean";
  locale: string;
  lang: string;
  colorScheme: "light" | "dark";
}

const variants: Variant[] = [];
for (const [language, locale, lang] of [
  ["English", "en-US", "en"],
  ["Korean", "ko-KR", "ko"],
] as const) {
  for (const colorScheme of ["light", "dark"] as const) {
    variants.push({ language, locale, lang, colorScheme });
  }
}

async function newPage(browser: Browser, v: Variant): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  // The language comes from the browser's (Accept-Language, as a first
  // visit does); the theme follows the system setting (prefers-color-scheme).
  // Reduced motion: the call's notices appear and go without a fade, so
  // axe never reads a colour halfway through one (a blended colour no
  // reader sees for longer than 300 ms; waiting for transitions to end was
  // not enough, as a fade could start while axe was reading).
  const context = await browser.newContext({
    locale: v.locale,
    colorScheme: v.colorScheme,
    timezoneId: "Asia/Seoul",
    reducedMotion: "reduce",
  });
  await context.addInitScript(RECORD_PEER_CONNECTIONS);
  const page = await context.newPage();
  return { context, page, errors: watchConsole(page) };
}

for (const v of variants) {
  test(`every screen has no serious or critical axe violation (${v.language}, ${v.colorScheme})`, async ({ browser }) => {
    const found: string[] = [];
    const check = async (page: Page, screen: string) => {
      await expect(page.locator("html")).toHaveAttribute("lang", v.lang);
      const problems = await axeProblems(page);
      for (const p of problems) console.log(`[${v.language}, ${v.colorScheme}] ${screen}: ${p}`);
      found.push(...problems.map((p) => `${screen}: ${p}`));
    };

    // A visitor: home, sign in, sign up, continue as a guest.
    const host = await newPage(browser, v);
    for (const [path, screen] of [
      ["/", "home"],
      ["/signin", "sign in"],
      ["/signup", "sign up"],
      ["/guest", "guest name"],
    ]) {
      await host.page.goto(path);
      await hydrated(host.page);
      await check(host.page, screen);
    }

    // The host signs up: meetings list, the schedule form, a meeting's page.
    const origin = new URL(host.page.url()).origin;
    const hostName = uniqueName("host");
    const signUp = await host.page.request.post("/api/sign_up", {
      headers: { origin },
      form: { username: hostName, display_name: `Host ${hostName.slice(-4)}`, email: "", password: PASSWORD },
    });
    expect(signUp.status()).toBe(200);
    await host.page.goto("/meetings");
    await hydrated(host.page);
    await expect(host.page.getByTestId("meetings-title")).toBeVisible();
    await check(host.page, "meetings list (empty)");
    await host.page.goto("/meetings/new");
    await hydrated(host.page);
    await check(host.page, "schedule form");
    // A bad submission shows the field errors.
    await host.page.getByTestId("meeting-submit").click();
    await expect(host.page.locator('[data-field-error="title"]')).not.toBeEmpty();
    await check(host.page, "schedule form with errors");

    const schedule = await host.page.request.post("/api/schedule_meeting", {
      headers: { origin },
      form: { title: "Weekly sync", instant: "1", waiting_room: "on", allow_guests: "on", max_participants: "6" },
    });
    expect(schedule.status()).toBe(200);
    const path = `/m/${await schedule.json()}`;
    await host.page.goto("/meetings");
    await hydrated(host.page);
    await expect(host.page.getByTestId("meeting-card")).toHaveCount(1);
    await check(host.page, "meetings list");
    await host.page.goto(path);
    await hydrated(host.page);
    await expect(host.page.getByTestId("knock-panel")).toBeVisible();
    await check(host.page, "meeting page");

    // A guest in the lobby (waiting room on): preview, devices, name.
    const guest = await newPage(browser, v);
    await guest.page.goto(`${path}/join`);
    await hydrated(guest.page);
    const preview = guest.page.getByTestId("preview-video");
    await expect.poll(() => preview.evaluate((el: HTMLVideoElement) => el.videoWidth)).toBeGreaterThan(0);
    await expect.poll(() => guest.page.locator("#device-camera option").count()).toBeGreaterThan(0);
    await check(guest.page, "lobby");
    // The connection self-test the lobby links to.
    await guest.page.getByTestId("selftest-link").click();
    await expect(guest.page).toHaveURL(/\/selftest/);
    await hydrated(guest.page);
    await check(guest.page, "self-test");
    await guest.page.goBack();
    await hydrated(guest.page);
    await expect.poll(() => guest.page.locator("#device-camera option").count()).toBeGreaterThan(0);
    await guest.page.locator("#lobby-name").fill("Guest Lee");
    await guest.page.getByTestId("lobby-enter").click();
    await expect(guest.page.getByTestId("lobby-waiting")).toBeVisible();
    await check(guest.page, "lobby, waiting");

    // The host sees the knock and lets the guest in.
    const knock = host.page.getByTestId("knock-panel").getByTestId("knock");
    await expect(knock).toHaveCount(1);
    await check(host.page, "meeting page with a knock");
    await knock.getByTestId("admit").click();
    await expect(guest.page).toHaveURL(new RegExp(`${path}/room`));
    await expect(guest.page.getByTestId("call")).toHaveAttribute("data-phase", "live");

    // The host joins: the call with two people.
    await host.page.goto(`${path}/join`);
    await hydrated(host.page);
    await host.page.getByTestId("lobby-enter").click();
    await expect(host.page).toHaveURL(new RegExp(`${path}/room`));
    await expect(host.page.getByTestId("call")).toHaveAttribute("data-phase", "live");
    await expect(host.page.locator('[data-testid="tile"][data-local="false"]')).toHaveCount(1);
    await check(host.page, "call");

    // Chat, with a link in a message; the guest's unread count.
    await host.page.getByTestId("chat-button").click();
    const panel = host.page.getByTestId("chat-panel");
    await expect(panel).toBeVisible();
    await panel.getByTestId("chat-input").fill("Notes are at https://example.org/notes for everyone.");
    await panel.getByTestId("chat-input").press("Enter");
    await expect(panel.getByTestId("chat-message").last()).toHaveAttribute("data-status", "sent");
    await check(host.page, "call, chat open");
    await expect(guest.page.getByTestId("chat-unread")).toHaveText("1");
    await check(guest.page, "call, unread chat");
    await guest.page.getByTestId("chat-button").click();
    await guest.page.getByTestId("people-button").click();
    await expect(guest.page.getByTestId("people-panel")).toBeVisible();
    await expect(guest.page.getByTestId("chat-panel").getByTestId("chat-message")).toHaveCount(1);
    await check(guest.page, "call, people and chat open");
    await host.page.getByTestId("people-button").click();
    await expect(host.page.getByTestId("people-panel").getByTestId("ask-mute")).toBeVisible();
    // Muted and camera off: the controls' "off" look, the initial, the badge.
    await host.page.getByTestId("mic-button").click();
    await host.page.getByTestId("cam-button").click();
    await expect(host.page.getByTestId("mic-button")).toHaveAttribute("aria-pressed", "true");
    await expect(host.page.getByTestId("cam-button")).toHaveAttribute("aria-pressed", "true");
    await check(host.page, "call, host's people panel, muted, camera off");
    await expect(guest.page.locator('[data-testid="tile"][data-local="false"]')).toHaveAttribute("data-mic", "off");
    await check(guest.page, "call, someone muted");

    // The host ends the meeting: the guest's end screen, the transcript.
    host.page.once("dialog", (d) => d.accept());
    await host.page.getByTestId("end-button").click();
    await expect(guest.page.getByTestId("call-closed")).toHaveAttribute("data-reason", "ended");
    await check(guest.page, "call ended");
    await host.page.goto(path);
    await hydrated(host.page);
    await expect(host.page.getByTestId("transcript")).toContainText("example.org/notes");
    await check(host.page, "chat transcript");

    expect(host.errors, "console errors of the host").toEqual([]);
    expect(guest.errors, "console errors of the guest").toEqual([]);
    await host.context.close();
    await guest.context.close();
    expect(found, `serious or critical axe violations:\n${found.join("\n")}`).toEqual([]);
  });
}

/** What the focused element is, and whether its focus shows. */
function focusState() {
  const el = document.activeElement as HTMLElement | null;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2 && style.outlineColor !== "rgba(0, 0, 0, 0)";
  const ring = style.boxShadow !== "none";
  return {
    what: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}${el.getAttribute("data-testid") ? `[data-testid=${el.getAttribute("data-testid")}]` : ""} "${(el.textContent ?? "").trim().slice(0, 30)}"`,
    visible: outline || ring,
  };
}

test("every control of the call and the lobby is reachable by keyboard and shows its focus", async ({ browser }) => {
  for (const colorScheme of ["light", "dark"] as const) {
    const context = await browser.newContext({ colorScheme, locale: "en-US" });
    const page = await context.newPage();
    const errors = watchConsole(page);
    await page.goto("/");
    const origin = new URL(page.url()).origin;
    const name = uniqueName("keys");
    expect((await page.request.post("/api/sign_up", {
      headers: { origin },
      form: { username: name, display_name: name, email: "", password: PASSWORD },
    })).status()).toBe(200);
    const schedule = await page.request.post("/api/schedule_meeting", {
      headers: { origin },
      form: { title: "Keys", instant: "1", max_participants: "6" },
    });
    const path = `/m/${await schedule.json()}`;

    const tabThrough = async (scope: string, presses: number) => {
      await page.locator("body").focus();
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      const reached = new Map<string, boolean>();
      const seen: string[] = [];
      for (let i = 0; i < presses; i++) {
        await page.keyboard.press("Tab");
        const state = await page.evaluate(focusState);
        if (!state) continue;
        if (!reached.has(state.what)) seen.push(state.what);
        reached.set(state.what, state.visible);
      }
      // Every visible, enabled control in `scope` was reached…
      const controls = await page.locator(scope).evaluate((root) =>
        Array.from(root.querySelectorAll<HTMLElement>("a[href], button, input:not([type=hidden]), select, textarea, summary"))
          .filter((el) => !(el as HTMLButtonElement).disabled && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden")
          .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}${el.getAttribute("data-testid") ? `[data-testid=${el.getAttribute("data-testid")}]` : ""} "${(el.textContent ?? "").trim().slice(0, 30)}"`),
      );
      expect(controls.length).toBeGreaterThan(0);
      const missed = controls.filter((c) => !reached.has(c));
      expect(missed, `not reachable with Tab (${colorScheme}); reached: ${seen.join(", ")}`).toEqual([]);
      // …and showed where the focus is.
      const unseen = [...reached].filter(([, visible]) => !visible).map(([what]) => what);
      expect(unseen, `no visible focus indicator (${colorScheme})`).toEqual([]);
    };

    await page.goto(`${path}/join`);
    await hydrated(page);
    await expect.poll(() => page.locator("#device-camera option").count()).toBeGreaterThan(0);
    await tabThrough(".lobby", 25);

    await page.getByTestId("lobby-enter").click();
    await expect(page.getByTestId("call")).toHaveAttribute("data-phase", "live");
    await page.getByTestId("chat-button").click();
    await page.getByTestId("people-button").click();
    await expect(page.getByTestId("chat-panel")).toBeVisible();
    await tabThrough('[data-testid="call"]', 40);

    expect(errors, "console errors").toEqual([]);
    await context.close();
  }
});
