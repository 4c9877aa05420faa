import { expect, hydrated, uniqueName, watchConsole } from "./fixtures";
import type { Browser, BrowserContext, Locator, Page } from "@playwright/test";

export const PASSWORD = "a long enough password";

/**
 * Test instrumentation, not product code: remembers every RTCPeerConnection
 * the page makes, so a test can read `getStats()`.
 */
export const RECORD_PEER_CONNECTIONS = () => {
  const Original = window.RTCPeerConnection;
  (window as any).__pcs = [];
  window.RTCPeerConnection = class extends Original {
    constructor(config?: RTCConfiguration) {
      super(config);
      (window as any).__pcs.push(this);
    }
  } as typeof RTCPeerConnection;
};

/**
 * Test instrumentation: headless Chromium has no screen to capture, so a
 * 16:9 canvas stream stands in for getDisplayMedia (the fake camera is 4:3).
 */
export const FAKE_SCREEN = () => {
  navigator.mediaDevices.getDisplayMedia = async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 1280;
    canvas.height = 720;
    const ctx = canvas.getContext("2d")!;
    let frame = 0;
    setInterval(() => {
      frame += 1;
      ctx.fillStyle = `hsl(${frame % 360}, 70%, 50%)`;
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.fillStyle = "#fff";
      ctx.font = "80px sans-serif";
      ctx.fillText(`slide ${frame}`, 100, 300);
    }, 50);
    return canvas.captureStream(20);
  };
};

export interface Person {
  name: string;
  context: BrowserContext;
  page: Page;
  errors: string[];
}

/** A signed-up person in a browser context of their own. */
export async function person(browser: Browser, label: string, baseURL?: string): Promise<Person> {
  const context = await browser.newContext(baseURL ? { baseURL } : {});
  await context.addInitScript(RECORD_PEER_CONNECTIONS);
  const page = await context.newPage();
  const errors = watchConsole(page);
  const name = uniqueName(label);
  await page.goto("/");
  const origin = new URL(page.url()).origin;
  const response = await page.request.post("/api/sign_up", {
    headers: { origin },
    form: { username: name, display_name: name, email: "", password: PASSWORD },
  });
  expect(response.status()).toBe(200);
  return { name, context, page, errors };
}

/** An instant meeting by `host` with everyone in `invitees` let straight in. */
export async function meetingWith(host: Person, invitees: Person[], extra: Record<string, string> = {}): Promise<string> {
  const origin = new URL(host.page.url()).origin;
  const response = await host.page.request.post("/api/schedule_meeting", {
    headers: { origin },
    form: {
      title: "Weekly sync",
      instant: "1",
      invitees: invitees.map((p) => p.name).join(", "),
      max_participants: "6",
      ...extra,
    },
  });
  expect(response.status()).toBe(200);
  return `/m/${await response.json()}`;
}

/** Through the lobby into the live call. */
export async function joinCall(who: Person, meetingPath: string): Promise<void> {
  await who.page.goto(`${meetingPath}/join`);
  // The people who joined before are already sending and decoding video.
  await hydrated(who.page, 30_000);
  await who.page.getByTestId("lobby-enter").click();
  await expect(who.page).toHaveURL(new RegExp(`${meetingPath}/room`));
  // The call connection's join takes a moment more when the machine runs
  // several browsers at once (six in the largest tests).
  await expect(who.page.getByTestId("call")).toHaveAttribute("data-phase", "live", { timeout: 30_000 });
}

export function remoteTiles(page: Page): Locator {
  return page.locator('[data-testid="tile"][data-local="false"]');
}

export function tileOf(page: Page, name: string): Locator {
  return page.locator(`[data-testid="tile"][data-name="${name}"]`);
}

/** The video in `tile` is decoding: it has a size and its time moves on. */
export async function expectPlaying(tile: Locator): Promise<void> {
  const video = tile.getByTestId("tile-video");
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.videoWidth), { timeout: 20_000 }).toBeGreaterThan(0);
  const t0 = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { timeout: 10_000 }).toBeGreaterThan(t0);
}

export async function videoAspect(tile: Locator): Promise<number> {
  return tile.getByTestId("tile-video").evaluate((v: HTMLVideoElement) => (v.videoHeight ? v.videoWidth / v.videoHeight : 0));
}

export async function closeAll(people: Person[]): Promise<void> {
  for (const p of people) {
    expect(p.errors, `console errors of ${p.name}`).toEqual([]);
    await p.context.close();
  }
}
