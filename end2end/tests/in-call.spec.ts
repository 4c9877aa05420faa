import { test, expect, hydrated } from "./fixtures";
import { closeAll, expectPlaying, joinCall, meetingWith, person, remoteTiles, tileOf } from "./call-helpers";
import type { Locator } from "@playwright/test";

test.describe.configure({ timeout: 90_000 });

/** The most reactions seen at once in `tile` over `ms` milliseconds. */
async function mostReactionsSeen(tile: Locator, ms: number): Promise<number> {
  let most = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    most = Math.max(most, await tile.getByTestId("reaction").count());
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return most;
}

test("reactions float for everyone; hands queue in order and the host calls on them", async ({ browser }) => {
  const host = await person(browser, "host");
  const bob = await person(browser, "bob");
  const cat = await person(browser, "cat");
  const path = await meetingWith(host, [bob, cat]);
  await joinCall(host, path);
  await joinCall(bob, path);
  // Someone arriving is said on the others' pages (a polite live region).
  await expect(host.page.getByTestId("call-activity")).toHaveText(`${bob.name} joined`);
  await joinCall(cat, path);
  await expect(host.page.getByTestId("call-activity")).toHaveText(`${cat.name} joined`);
  await expect(remoteTiles(host.page)).toHaveCount(2);

  // Bob reacts: it floats over his tile on every page, his own included.
  await bob.page.getByRole("button", { name: "React" }).click();
  await bob.page.getByRole("button", { name: "Clap" }).click();
  for (const viewer of [host, cat]) {
    const reaction = tileOf(viewer.page, bob.name).getByTestId("reaction");
    await expect(reaction).toHaveAttribute("data-reaction", "clap");
    await expect(reaction).toHaveText("👏");
  }
  await expect(bob.page.locator('[data-testid="tile"][data-local="true"]').getByTestId("reaction")).toHaveCount(1);
  // It floats away after a few seconds.
  await expect(tileOf(host.page, bob.name).getByTestId("reaction")).toHaveCount(0, { timeout: 8_000 });

  // A burst of clicks is cut down by the server's limit (5 at once, then
  // about one a second), on everyone's screen.
  const heart = bob.page.getByRole("button", { name: "Heart" });
  await heart.evaluate((button: HTMLButtonElement) => {
    for (let i = 0; i < 12; i++) button.click();
  });
  const most = await mostReactionsSeen(tileOf(host.page, bob.name), 2_500);
  expect(most).toBeGreaterThanOrEqual(4);
  expect(most).toBeLessThanOrEqual(6);

  // Cat raises her hand first, then Bob: the host sees them in that order.
  await cat.page.getByTestId("hand-button").click();
  await expect(host.page.getByTestId("call-activity")).toHaveText(`${cat.name} raised their hand`);
  await expect(tileOf(host.page, cat.name).getByTestId("hand-badge")).toHaveAttribute("data-position", "1");
  await bob.page.getByTestId("hand-button").click();
  await expect(tileOf(host.page, bob.name).getByTestId("hand-badge")).toHaveAttribute("data-position", "2");
  await expect(host.page.getByTestId("hands-count")).toContainText("2");
  await host.page.getByTestId("people-button").click();
  const queue = host.page.getByTestId("hand-queue-entry");
  await expect(queue).toHaveCount(2);
  await expect(queue.nth(0)).toContainText(cat.name);
  await expect(queue.nth(1)).toContainText(bob.name);
  // Everyone sees the same order (it is the server's).
  await expect(tileOf(cat.page, bob.name).getByTestId("hand-badge")).toHaveAttribute("data-position", "2");
  // Only hosts can lower someone else's hand.
  await bob.page.getByTestId("people-button").click();
  await expect(bob.page.getByTestId("hand-queue-entry")).toHaveCount(2);
  await expect(bob.page.getByTestId("lower-hand")).toHaveCount(0);

  // The host calls on Cat: her hand goes down on her page and everyone's,
  // and Bob moves up.
  await queue.nth(0).getByRole("button", { name: `Lower hand: ${cat.name}` }).click();
  await expect(cat.page.getByTestId("hand-button")).toHaveAttribute("aria-pressed", "false");
  await expect(cat.page.getByTestId("call-notice")).toContainText("lowered your hand");
  await expect(tileOf(host.page, cat.name)).toHaveAttribute("data-hand", "false");
  await expect(tileOf(bob.page, cat.name)).toHaveAttribute("data-hand", "false");
  await expect(queue).toHaveCount(1);
  await expect(queue.nth(0)).toContainText(bob.name);
  await expect(tileOf(host.page, bob.name).getByTestId("hand-badge")).toHaveAttribute("data-position", "1");

  // Leaving is said too.
  await cat.page.getByTestId("leave-button").click();
  await expect(host.page.getByTestId("call-activity")).toHaveText(`${cat.name} left`);
  await closeAll([host, bob, cat]);
});

test("keyboard shortcuts control the call, are listed, and can be turned off", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  const path = await meetingWith(ann, [bob]);
  await joinCall(ann, path);
  await joinCall(bob, path);
  const annOnBob = tileOf(bob.page, ann.name);
  // The tab says which meeting this is.
  await expect(ann.page).toHaveTitle(/Weekly sync/);

  await ann.page.locator("body").press("m");
  await expect(ann.page.getByTestId("mic-button")).toHaveAttribute("aria-pressed", "true");
  await expect(annOnBob).toHaveAttribute("data-mic", "off");
  await ann.page.locator("body").press("v");
  await expect(annOnBob).toHaveAttribute("data-cam", "off");
  await ann.page.locator("body").press("h");
  await expect(annOnBob).toHaveAttribute("data-hand", "true");
  await ann.page.locator("body").press("c");
  await expect(ann.page.getByTestId("chat-panel")).toBeVisible();

  // Typing in the chat is typing, not shortcuts.
  await ann.page.getByTestId("chat-input").fill("");
  await ann.page.getByTestId("chat-input").press("m");
  await expect(ann.page.getByTestId("mic-button")).toHaveAttribute("aria-pressed", "true");
  await ann.page.getByTestId("chat-input").fill("");
  await ann.page.getByTestId("chat-input").blur();
  await ann.page.keyboard.press("c");
  await expect(ann.page.getByTestId("chat-panel")).toHaveCount(0);

  // An unread message shows in the tab's title and is said once.
  await bob.page.getByTestId("chat-button").click();
  await bob.page.getByTestId("chat-input").fill("hello from bob");
  await bob.page.getByTestId("chat-send").click();
  await expect(ann.page).toHaveTitle(/^\(1\) Weekly sync/);
  await expect(ann.page.getByTestId("call-activity")).toHaveText(`New message from ${bob.name}`);

  // "?" lists them in a dialog that Escape closes; a button opens it too.
  await ann.page.locator("body").press("?");
  const dialog = ann.page.getByRole("dialog", { name: "Shortcuts" });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByRole("row")).toHaveCount(7);
  await ann.page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  await ann.page.getByRole("button", { name: "Shortcuts" }).click();
  await expect(dialog).toBeVisible();
  // Single-key shortcuts off (they get in the way of speech input): "m"
  // does nothing any more, and that is remembered.
  await dialog.getByLabel("Use single-key shortcuts").uncheck();
  await dialog.getByRole("button", { name: "Close" }).click();
  await expect(dialog).toBeHidden();
  await ann.page.locator("body").press("m");
  await ann.page.waitForTimeout(300);
  await expect(ann.page.getByTestId("mic-button")).toHaveAttribute("aria-pressed", "true");
  expect(await ann.page.evaluate(() => localStorage.getItem("moim.shortcuts"))).toBe("off");

  // Pin Bob: his tile is the large one; speaker view keeps a large tile
  // (Bob, the only other person) when nothing is pinned.
  const bobOnAnn = tileOf(ann.page, bob.name);
  await expect(bobOnAnn).toHaveAttribute("data-featured", "false");
  await bobOnAnn.hover();
  await ann.page.getByRole("button", { name: `Pin ${bob.name}` }).click();
  await expect(bobOnAnn).toHaveAttribute("data-featured", "true");
  await ann.page.getByRole("button", { name: `Unpin ${bob.name}` }).click();
  await expect(bobOnAnn).toHaveAttribute("data-featured", "false");
  await ann.page.getByRole("button", { name: "Speaker view" }).click();
  await expect(ann.page.getByTestId("grid")).toHaveAttribute("data-layout", "speaker");
  await expect(bobOnAnn).toHaveAttribute("data-featured", "true");
  await ann.page.getByRole("button", { name: "Speaker view" }).click();
  await expect(bobOnAnn).toHaveAttribute("data-featured", "false");

  // Shift+L leaves (with shortcuts on again).
  await ann.page.evaluate(() => localStorage.setItem("moim.shortcuts", "on"));
  await bob.page.locator("body").press("Shift+L");
  await expect(bob.page.getByTestId("call-closed")).toHaveAttribute("data-reason", "left");
  await expect(remoteTiles(ann.page)).toHaveCount(0);
  await closeAll([ann, bob]);
});

test("changing camera and microphone mid-call keeps the other side decoding", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  const path = await meetingWith(ann, [bob]);
  await joinCall(ann, path);
  await joinCall(bob, path);
  const annOnBob = tileOf(bob.page, ann.name);
  await expectPlaying(annOnBob);

  // What Ann sends, read from her own connection (test instrumentation).
  const sentDevice = (kind: string) =>
    ann.page.evaluate((kind) => {
      const pc = (window as any).__pcs.find((p: RTCPeerConnection) => p.connectionState !== "closed");
      const sender = pc?.getSenders().find((s: RTCRtpSender) => s.track?.kind === kind);
      return sender?.track?.getSettings().deviceId ?? null;
    }, kind);
  const negotiations = () =>
    ann.page.evaluate(() =>
      (window as any).__pcs
        .filter((p: RTCPeerConnection) => p.connectionState !== "closed")
        .map((p: RTCPeerConnection) => p.localDescription?.sdp.length ?? 0)
        .join(","),
    );
  const firstCamera = await sentDevice("video");
  const sdpBefore = await negotiations();

  await ann.page.getByRole("button", { name: "Devices" }).click();
  const dialog = ann.page.getByRole("dialog", { name: "Devices" });
  await expect(dialog).toBeVisible();
  const camera = dialog.getByLabel("Camera");
  await expect.poll(() => camera.locator("option").count()).toBe(3);
  // Chromium's third fake camera (its second is a depth camera).
  const other = await camera.locator("option", { hasText: "fake_device_2" }).getAttribute("value");
  expect(other).not.toBe(firstCamera);
  await camera.selectOption(other!);
  await expect.poll(() => sentDevice("video")).toBe(other);

  const microphone = dialog.getByLabel("Microphone");
  const firstMic = await sentDevice("audio");
  const otherMic = await microphone.locator("option").evaluateAll(
    (options, current) => (options as HTMLOptionElement[]).map((o) => o.value).find((v) => v !== current && v !== "default"),
    firstMic,
  );
  await microphone.selectOption(otherMic!);
  await expect.poll(() => sentDevice("audio")).toBe(otherMic);
  await dialog.getByRole("button", { name: "Close" }).click();

  // The new tracks went out on the same connection (replaceTrack, no new
  // offer) and Bob's side keeps decoding Ann's video.
  expect(await negotiations()).toBe(sdpBefore);
  await expectPlaying(annOnBob);
  const frames = () =>
    bob.page.evaluate(async () => {
      let total = 0;
      for (const pc of (window as any).__pcs as RTCPeerConnection[]) {
        if (pc.connectionState === "closed") continue;
        (await pc.getStats()).forEach((r: any) => {
          if (r.type === "inbound-rtp" && r.kind === "video") total += r.framesDecoded ?? 0;
        });
      }
      return total;
    });
  const before = await frames();
  await expect.poll(frames, { timeout: 10_000 }).toBeGreaterThan(before + 10);

  // Each tile, and my own, says how the connection is doing, in words on
  // hover or focus (loopback: good).
  const quality = annOnBob.getByTestId("quality");
  await expect(quality).toHaveAttribute("data-level", "good", { timeout: 15_000 });
  await expect(quality).toHaveAttribute("aria-label", /^Connection is good\. .*% of packets lost, \d+ ms round trip/);
  const mine = bob.page.locator('[data-testid="tile"][data-local="true"]').getByTestId("quality");
  await expect(mine).toHaveAttribute("data-level", "good");
  await mine.focus();
  await expect(mine).toBeFocused();
  await closeAll([ann, bob]);
});

test("a host in the call hears of someone knocking, with a sound if chosen", async ({ browser }) => {
  const host = await person(browser, "host");
  const path = await meetingWith(host, [], { waiting_room: "on", allow_guests: "on" });
  await joinCall(host, path);
  // Sounds are off until chosen; the choice is remembered.
  await host.page.getByRole("button", { name: "Devices" }).click();
  const dialog = host.page.getByRole("dialog", { name: "Devices" });
  const sounds = dialog.getByLabel("Play a sound when someone joins or knocks");
  await expect(sounds).not.toBeChecked();
  await sounds.check();
  await dialog.getByRole("button", { name: "Close" }).click();
  expect(await host.page.evaluate(() => localStorage.getItem("moim.sounds"))).toBe("on");
  // Count the sounds the page plays (test instrumentation).
  await host.page.evaluate(() => {
    (window as any).__played = 0;
    const play = HTMLMediaElement.prototype.play;
    HTMLMediaElement.prototype.play = function (this: HTMLMediaElement) {
      if (this.src.startsWith("blob:")) (window as any).__played += 1;
      return play.call(this);
    };
  });

  const guest = await browser.newContext();
  const page = await guest.newPage();
  await page.goto(`${path}/join`);
  await hydrated(page);
  await page.getByLabel("Your name").fill("Knocker");
  await page.getByTestId("lobby-enter").click();
  await expect(page.getByTestId("lobby-waiting")).toBeVisible();

  await expect(host.page.getByTestId("call-activity")).toHaveText("Someone is waiting to be let in");
  await expect(host.page.getByTestId("knock-panel").getByTestId("knock")).toContainText("Knocker");
  await expect.poll(() => host.page.evaluate(() => (window as any).__played)).toBeGreaterThan(0);
  await guest.close();
  await closeAll([host]);
});
