import { test, expect } from "./fixtures";
import type { Browser } from "@playwright/test";
import { FAKE_SCREEN, closeAll, expectPlaying, joinCall, meetingWith, person, remoteTiles, tileOf, videoAspect, type Person } from "./call-helpers";

// Six browsers decoding five videos each on a small (and, under CI, busy)
// two-core machine: give it time.
test.describe.configure({ timeout: 420_000 });

// The instances of playwright.config.ts that send every call through the
// built-in media server (the second also only through coturn).
const port = Number(process.env.MOIM_E2E_PORT ?? 3100);
const sfuURL = `http://127.0.0.1:${port + 4}`;
const sfuRelayURL = `http://127.0.0.1:${port + 5}`;
const switchURL = `http://127.0.0.1:${port + 6}`;
const lastNURL = `http://127.0.0.1:${port + 8}`;

/**
 * Test instrumentation: six browsers on a two-core test machine each
 * encode and decode several videos; a small fake camera keeps them from
 * starving each other (a real call has one browser per computer).
 */
const SMALL_CAMERA = () => {
  const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (c?: MediaStreamConstraints) =>
    open({ ...c, video: c?.video ? { ...(typeof c.video === "object" ? c.video : {}), width: 240, height: 180, frameRate: 12 } : c?.video });
};

async function smallPerson(browser: Browser, label: string, baseURL?: string): Promise<Person> {
  const p = await person(browser, label, baseURL);
  await p.context.addInitScript(SMALL_CAMERA);
  return p;
}

/** What the page receives over its one connection to the media server. */
async function received(p: Person) {
  return p.page.evaluate(async () => {
    const pcs = (window as any).__pcs as RTCPeerConnection[];
    const pc = pcs.at(-1)!;
    const stats = await pc.getStats();
    const videos: number[] = [];
    let audioBytes = 0;
    let pair: { local?: string; remote?: string; address?: string } | null = null;
    let pairId: string | undefined;
    stats.forEach((s: any) => {
      if (s.type === "inbound-rtp" && s.kind === "video") videos.push(s.framesDecoded ?? 0);
      if (s.type === "inbound-rtp" && s.kind === "audio") audioBytes += s.bytesReceived ?? 0;
      if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const selected = pairId ? (stats.get(pairId) as any) : undefined;
    if (selected) {
      const remote = stats.get(selected.remoteCandidateId) as any;
      pair = { local: (stats.get(selected.localCandidateId) as any)?.candidateType, remote: remote?.candidateType, address: `${remote?.address}:${remote?.port}` };
    }
    return {
      // Where the last connection stands, for a failure to tell.
      state: `${pc.connectionState}/ice ${pc.iceConnectionState}/${pc.signalingState}, ${pcs.length} connection(s) made`,
      connections: pcs.filter((c) => c.connectionState !== "closed").length,
      decoding: videos.filter((f) => f > 0).length,
      frames: videos.reduce((a, b) => a + b, 0),
      audioBytes,
      pair,
    };
  });
}

test("six people through the media server each decode five videos and hear audio", async ({ browser }) => {
  const people: Person[] = [];
  for (const label of ["ann", "bob", "cy", "di", "ed", "flo"]) people.push(await smallPerson(browser, label, sfuURL));
  const [host, ...rest] = people;
  const path = await meetingWith(host, rest);
  for (const p of people) await joinCall(p, path);

  for (const p of people) {
    await expect(p.page.getByTestId("media-path")).toHaveAttribute("data-path", "server");
    await expect(remoteTiles(p.page)).toHaveCount(5);
  }
  for (const p of people) {
    // One connection, whatever the number of people; five videos decoding.
    try {
      await expect.poll(async () => (await received(p)).decoding, { timeout: 60_000 }).toBe(5);
    } catch (failure) {
      for (const q of people) {
        const r = await received(q);
        console.log(`${q.name}: ${r.decoding} video(s) decoding, ${r.frames} frames; ${r.state}`);
      }
      throw failure;
    }
    const before = await received(p);
    expect(before.connections).toBe(1);
    expect(before.pair?.remote).toBe("host");
    await expect.poll(async () => (await received(p)).frames, { timeout: 20_000 }).toBeGreaterThan(before.frames);
    await expect.poll(async () => (await received(p)).audioBytes, { timeout: 20_000 }).toBeGreaterThan(before.audioBytes);
  }
  // Every tile of the host shows its person's video.
  for (const other of rest) await expectPlaying(tileOf(host.page, other.name));

  // Someone leaves: gone from every grid; the others still see the rest.
  const leaving = rest[4];
  await leaving.page.getByTestId("leave-button").click();
  for (const p of people.slice(0, 5)) {
    await expect(tileOf(p.page, leaving.name)).toHaveCount(0);
    await expect(remoteTiles(p.page)).toHaveCount(4);
  }
  await expectPlaying(tileOf(host.page, rest[0].name));
  await closeAll(people);
});

/** How many transceivers (m-lines) the page's media-server connection has. */
async function transceivers(p: Person): Promise<number> {
  return p.page.evaluate(() => ((window as any).__pcs as RTCPeerConnection[]).at(-1)!.getTransceivers().length);
}

test("someone who comes after another left takes over their m-lines, and their video shows in their own tile", async ({ browser }) => {
  const people: Person[] = [];
  for (const label of ["ann", "bob", "cy", "di"]) people.push(await smallPerson(browser, label, sfuURL));
  const [ann, bob, cy, di] = people;
  const path = await meetingWith(ann, [bob, cy, di]);
  for (const p of [ann, bob, cy]) await joinCall(p, path);
  await expectPlaying(tileOf(ann.page, cy.name));
  await expectPlaying(tileOf(ann.page, bob.name));
  const before = await transceivers(ann);

  await cy.page.getByTestId("leave-button").click();
  await expect(tileOf(ann.page, cy.name)).toHaveCount(0);
  await joinCall(di, path);
  await expect(remoteTiles(ann.page)).toHaveCount(2);
  await expectPlaying(tileOf(ann.page, di.name));
  await expectPlaying(tileOf(ann.page, bob.name));
  // Di's microphone and camera went into the m-lines Cy left: Ann's
  // connection did not grow, and was not started over.
  expect(await transceivers(ann)).toBe(before);
  const now = await received(ann);
  expect(now.connections).toBe(1);
  expect(now.state).toMatch(/1 connection\(s\) made/);
  await expect.poll(async () => (await received(ann)).decoding, { timeout: 30_000 }).toBe(2);
  await closeAll(people);
});

test("a screen shared through the media server replaces the camera for the others", async ({ browser }) => {
  const ann = await person(browser, "ann", sfuURL);
  const bob = await person(browser, "bob", sfuURL);
  await bob.context.addInitScript(FAKE_SCREEN);
  const path = await meetingWith(ann, [bob]);
  await joinCall(ann, path);
  await joinCall(bob, path);
  const bobOnAnn = tileOf(ann.page, bob.name);
  await expectPlaying(bobOnAnn);
  await expect.poll(() => videoAspect(bobOnAnn)).toBeCloseTo(4 / 3, 1);

  await bob.page.getByTestId("share-button").click();
  await expect(bobOnAnn).toHaveAttribute("data-screen", "true");
  await expect.poll(() => videoAspect(bobOnAnn), { timeout: 20_000 }).toBeCloseTo(16 / 9, 1);
  await expectPlaying(bobOnAnn);
  // Still one connection each: the screen took the camera's sender.
  expect((await received(ann)).connections).toBe(1);
  await closeAll([ann, bob]);
});

/**
 * Test instrumentation: the page's first answer to an offer of the media
 * server is set 7 s late (a page starved of CPU), after the server stopped
 * waiting for it (5 s) and took its offer back.
 */
const LATE_FIRST_ANSWER = () => {
  const set = RTCPeerConnection.prototype.setLocalDescription;
  let late = false;
  RTCPeerConnection.prototype.setLocalDescription = async function (this: RTCPeerConnection, ...args: any[]) {
    if (!late && this.signalingState === "have-remote-offer") {
      late = true;
      (window as any).__answeredLate = true;
      await new Promise((resolve) => setTimeout(resolve, 7_000));
    }
    return (set as any).apply(this, args);
  };
};

test("a page that answers the media server too late starts its connection over and gets the video", async ({ browser }) => {
  const ann = await person(browser, "ann", sfuURL);
  const bob = await person(browser, "bob", sfuURL);
  await ann.context.addInitScript(LATE_FIRST_ANSWER);
  const path = await meetingWith(ann, [bob]);
  await joinCall(ann, path);
  await joinCall(bob, path);
  // Bob's coming makes the server offer Ann his tracks; her answer is late.
  await expect.poll(() => ann.page.evaluate(() => (window as any).__answeredLate === true), { timeout: 20_000 }).toBe(true);
  // The server gave up on that offer and took it back: its next offer, or
  // its refusal of the late answer, does not fit the page's connection.
  // The page starts over on a new connection (the old one closed, its
  // late answer never sent) and Bob's video plays on it.
  await expect.poll(async () => (await received(ann)).state, { timeout: 30_000 }).toMatch(/2 connection\(s\) made/);
  await expectPlaying(tileOf(ann.page, bob.name));
  expect((await received(ann)).connections).toBe(1);
  // Bob never noticed.
  await expectPlaying(tileOf(bob.page, ann.name));
  expect((await received(bob)).state).toMatch(/^connected\/.*1 connection\(s\) made/);
  await closeAll([ann, bob]);
});

/**
 * Test instrumentation: the microphone is a steady tone (Web Audio), so
 * the audio level the browser stamps on its packets says "speech" while
 * the microphone is on (Chromium's fake microphone only beeps now and
 * then). A muted microphone sends silence. The lobby remembers this
 * track's made-up device id, which the room then cannot open: the room
 * falls back to the default microphone (as for an unplugged one).
 */
const TONE_MICROPHONE = () => {
  const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  const contexts: AudioContext[] = [];
  // An audio context may only start after a click (the autoplay rule).
  document.addEventListener("click", () => contexts.forEach((c) => c.resume()), { capture: true });
  navigator.mediaDevices.getUserMedia = async (c?: MediaStreamConstraints) => {
    const stream = await open(c);
    if (!c?.audio) return stream;
    const context = new AudioContext();
    contexts.push(context);
    const tone = context.createOscillator();
    tone.frequency.value = 440;
    const gain = context.createGain();
    gain.gain.value = 0.4;
    const out = context.createMediaStreamDestination();
    tone.connect(gain).connect(out);
    tone.start();
    context.resume();
    for (const track of stream.getAudioTracks()) {
      stream.removeTrack(track);
      track.stop();
    }
    stream.addTrack(out.stream.getAudioTracks()[0]);
    return stream;
  };
};

/** Ann, Bob and Cy, whose microphones play a tone, in one call through the media server at `url`. */
async function threeWithTones(browser: Browser, url: string): Promise<Person[]> {
  const people: Person[] = [];
  for (const label of ["ann", "bob", "cy"]) {
    const p = await smallPerson(browser, label, url);
    await p.context.addInitScript(TONE_MICROPHONE);
    people.push(p);
  }
  const path = await meetingWith(people[0], people.slice(1));
  for (const p of people) await joinCall(p, path);
  for (const p of people) {
    await expect(p.page.getByTestId("media-path")).toHaveAttribute("data-path", "server");
    await expect(remoteTiles(p.page)).toHaveCount(2);
  }
  return people;
}

test("the media server highlights whoever speaks, and speaker view follows", async ({ browser }) => {
  const people = await threeWithTones(browser, sfuURL);
  const [ann, bob, cy] = people;
  // Only Ann's microphone is on.
  for (const p of [bob, cy]) {
    await p.page.getByTestId("mic-button").click();
    await expect(p.page.getByTestId("mic-button")).toHaveAttribute("aria-pressed", "true");
  }
  const remote = (p: Person, of: Person) => p.page.locator(`[data-testid="tile"][data-local="false"][data-name="${of.name}"]`);
  await cy.page.getByRole("button", { name: "Speaker view" }).click();
  await expect(cy.page.getByTestId("grid")).toHaveAttribute("data-layout", "speaker");
  for (const [viewer, others] of [[bob, [cy]], [cy, [bob]]] as const) {
    await expect(remote(viewer, ann)).toHaveAttribute("data-speaking", "true", { timeout: 20_000 });
    for (const other of others) await expect(remote(viewer, other)).toHaveAttribute("data-speaking", "false");
  }
  await expect(remote(cy, ann)).toHaveAttribute("data-featured", "true");

  // Ann stops, Bob speaks: the highlight and the large tile move to him.
  await ann.page.getByTestId("mic-button").click();
  await bob.page.getByTestId("mic-button").click();
  await expect(bob.page.getByTestId("mic-button")).toHaveAttribute("aria-pressed", "false");
  for (const viewer of [ann, cy]) {
    await expect(remote(viewer, bob)).toHaveAttribute("data-speaking", "true", { timeout: 20_000 });
  }
  await expect(remote(cy, ann)).toHaveAttribute("data-speaking", "false", { timeout: 20_000 });
  await expect(remote(cy, bob)).toHaveAttribute("data-featured", "true");
  await expect(remote(cy, ann)).toHaveAttribute("data-featured", "false");
  // Its own tile too: the server names everyone who speaks.
  await expect(bob.page.locator('[data-testid="tile"][data-local="true"]')).toHaveAttribute("data-speaking", "true");
  await closeAll(people);
});

/** Frames decoded so far of the video shown in `viewer`'s tile of `name` (its receiver's stats). */
async function framesOf(viewer: Person, name: string): Promise<number> {
  return viewer.page.evaluate(async (name) => {
    const video = document.querySelector<HTMLVideoElement>(`[data-testid="tile"][data-name="${name}"] video`);
    const track = (video?.srcObject as MediaStream | null)?.getVideoTracks()[0];
    const pcs = (window as any).__pcs as RTCPeerConnection[];
    const receiver = pcs.flatMap((pc) => (pc.connectionState === "closed" ? [] : pc.getReceivers())).find((r) => r.track.id === track?.id);
    if (!receiver) return -1;
    let frames = 0;
    (await receiver.getStats()).forEach((s: any) => {
      if (s.type === "inbound-rtp") frames = s.framesDecoded ?? 0;
    });
    return frames;
  }, name);
}

async function expectFramesMoving(viewer: Person, name: string) {
  const before = await framesOf(viewer, name);
  await expect.poll(() => framesOf(viewer, name), { timeout: 10_000, message: `${name}'s video decodes on ${viewer.name}'s page` }).toBeGreaterThan(before + 3);
}

/**
 * Test instrumentation: a 640x360 fake camera, tall enough for two
 * simulcast layers (320x180 and 640x360), at a low frame rate.
 */
const SD_CAMERA = () => {
  const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (c?: MediaStreamConstraints) =>
    open({ ...c, video: c?.video ? { ...(typeof c.video === "object" ? c.video : {}), width: 640, height: 360, frameRate: 12 } : c?.video });
};

/** The height of the frames `viewer` decodes of `name`'s video (its receiver's inbound-rtp), and how tall the tile is. */
async function receivedHeight(viewer: Person, name: string): Promise<{ frame: number; tile: number }> {
  return viewer.page.evaluate(async (name) => {
    const video = document.querySelector<HTMLVideoElement>(`[data-testid="tile"][data-name="${name}"] video`);
    const track = (video?.srcObject as MediaStream | null)?.getVideoTracks()[0];
    const pcs = (window as any).__pcs as RTCPeerConnection[];
    const receiver = pcs.flatMap((pc) => (pc.connectionState === "closed" ? [] : pc.getReceivers())).find((r) => r.track.id === track?.id);
    let frame = -1;
    if (receiver) (await receiver.getStats()).forEach((s: any) => {
      if (s.type === "inbound-rtp" && s.kind === "video") frame = s.frameHeight ?? -1;
    });
    return { frame, tile: Math.round((video?.getBoundingClientRect().height ?? 0) * devicePixelRatio) };
  }, name);
}

test("the pinned tile gets the camera's full-size simulcast layer and a small tile a smaller one", async ({ browser }) => {
  const people: Person[] = [];
  for (const label of ["ann", "bob", "cy"]) {
    const p = await person(browser, label, sfuURL);
    await p.context.addInitScript(SD_CAMERA);
    people.push(p);
  }
  const [ann, bob, cy] = people;
  const path = await meetingWith(ann, [bob, cy]);
  for (const p of people) await joinCall(p, path);
  await expect(ann.page.getByTestId("media-path")).toHaveAttribute("data-path", "server");
  await expectPlaying(tileOf(ann.page, bob.name));
  await expectPlaying(tileOf(ann.page, cy.name));

  // Bob publishes two layers (the larger once his uplink estimate allows
  // it): the media server learns both heights from their keyframes.
  const sent = () => bob.page.evaluate(async () => {
    const pc = ((window as any).__pcs as RTCPeerConnection[]).at(-1)!;
    const heights: number[] = [];
    (await pc.getStats()).forEach((s: any) => {
      if (s.type === "outbound-rtp" && s.kind === "video" && s.frameHeight) heights.push(s.frameHeight);
    });
    return heights.sort((a, b) => a - b);
  });
  await expect.poll(sent, { timeout: 30_000, message: "Bob's camera goes in two layers" }).toEqual([180, 360]);

  // Ann pins Bob: his tile is large, Cy's small.
  await ann.page.getByRole("button", { name: `Pin ${bob.name}` }).click();
  await expect(tileOf(ann.page, bob.name)).toHaveAttribute("data-featured", "true");
  const frameHeight = async (of: Person) => (await receivedHeight(ann, of.name)).frame;
  await expect.poll(() => frameHeight(bob), { timeout: 20_000, message: "the pinned tile gets the full-size layer" }).toBe(360);
  await expect.poll(() => frameHeight(cy), { timeout: 20_000, message: "a small tile gets the small layer" }).toBe(180);
  const [large, small] = [await receivedHeight(ann, bob.name), await receivedHeight(ann, cy.name)];
  expect(large.tile).toBeGreaterThan(small.tile);
  await expectFramesMoving(ann, bob.name);
  await expectFramesMoving(ann, cy.name);

  // Pinning Cy instead swaps them over, each at a keyframe, with both
  // videos going on.
  await ann.page.getByRole("button", { name: `Pin ${cy.name}` }).click();
  await expect(tileOf(ann.page, cy.name)).toHaveAttribute("data-featured", "true");
  await expect.poll(() => frameHeight(cy), { timeout: 20_000, message: "Cy, pinned now, comes in full size" }).toBe(360);
  await expect.poll(() => frameHeight(bob), { timeout: 20_000, message: "Bob, small now, comes in the small layer" }).toBe(180);
  await expectFramesMoving(ann, bob.name);
  await expectFramesMoving(ann, cy.name);

  // Ann's page goes to the background (as a minimised window's does): no
  // video comes to it at all until it is shown again.
  const setHidden = (hidden: boolean) => ann.page.evaluate((hidden) => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
  await setHidden(true);
  await ann.page.waitForTimeout(3_000);
  const stopped = [await framesOf(ann, bob.name), await framesOf(ann, cy.name)];
  await ann.page.waitForTimeout(2_000);
  expect([await framesOf(ann, bob.name), await framesOf(ann, cy.name)], "nothing decoded while hidden").toEqual(stopped);
  await setHidden(false);
  await expectFramesMoving(ann, bob.name);
  await expectFramesMoving(ann, cy.name);
  await closeAll(people);
});

test("past the last N speakers a camera pauses, and speaking or pinning brings it back", async ({ browser }) => {
  // This instance sends each browser one camera (--sfu-last-n 1).
  const people = await threeWithTones(browser, lastNURL);
  const [ann, bob, cy] = people;
  for (const p of people) {
    await p.page.getByTestId("mic-button").click();
    await expect(p.page.getByTestId("mic-button")).toHaveAttribute("aria-pressed", "true");
  }
  const remote = (viewer: Person, of: Person) => viewer.page.locator(`[data-testid="tile"][data-local="false"][data-name="${of.name}"]`);

  // The tones spoke while everyone joined: the order settles once nobody
  // speaks any more (1.5 s after the last word).
  await expect(cy.page.locator('[data-testid="tile"][data-speaking="true"]')).toHaveCount(0, { timeout: 20_000 });
  await cy.page.waitForTimeout(1_000);

  // Cy receives one of the two cameras; the other tile says it is paused.
  const pausedTiles = cy.page.locator('[data-testid="tile"][data-video-paused="true"]');
  await expect(pausedTiles).toHaveCount(1, { timeout: 20_000 });
  const pausedName = await pausedTiles.getAttribute("data-name");
  const [quiet, shown] = pausedName === ann.name ? [ann, bob] : [bob, ann];
  await expect(remote(cy, quiet).getByText("Video paused")).toBeVisible();
  await expectFramesMoving(cy, shown.name);
  const frozen = await framesOf(cy, quiet.name);
  await cy.page.waitForTimeout(1_500);
  expect(await framesOf(cy, quiet.name), "nothing of the paused camera is decoded").toBe(frozen);

  // The paused one speaks: their camera comes back, the other one pauses.
  await quiet.page.getByTestId("mic-button").click();
  await expect(remote(cy, quiet)).toHaveAttribute("data-video-paused", "false", { timeout: 20_000 });
  await expectFramesMoving(cy, quiet.name);
  await expect(remote(cy, shown)).toHaveAttribute("data-video-paused", "true");
  await expect(remote(cy, shown).getByText("Video paused")).toBeVisible();

  // Cy pins the paused one: it comes back, and the speaker stays.
  await cy.page.getByRole("button", { name: `Pin ${shown.name}` }).click();
  await expect(remote(cy, shown)).toHaveAttribute("data-video-paused", "false", { timeout: 10_000 });
  await expectFramesMoving(cy, shown.name);
  await expect(remote(cy, quiet)).toHaveAttribute("data-video-paused", "false");
  await expectFramesMoving(cy, quiet.name);
  await closeAll(people);
});

test("through the media server and coturn only, media flows over relay candidates", async ({ browser }) => {
  const ann = await person(browser, "ann", sfuRelayURL);
  const bob = await person(browser, "bob", sfuRelayURL);
  const path = await meetingWith(ann, [bob]);
  await joinCall(ann, path);
  await joinCall(bob, path);
  await expectPlaying(tileOf(ann.page, bob.name));
  await expectPlaying(tileOf(bob.page, ann.name));
  for (const p of [ann, bob]) {
    const stats = await received(p);
    expect(stats.pair?.local).toBe("relay");
    expect(stats.decoding).toBe(1);
  }
  await closeAll([ann, bob]);
});

/** Watches every remote tile of `p`: the longest time any of them showed no new frame. */
async function watchStalls(p: Person, ignore: string[]) {
  await p.page.evaluate((ignored) => {
    const w = window as any;
    w.__stall = {};
    clearInterval(w.__stallTimer);
    w.__stallTimer = setInterval(() => {
      document.querySelectorAll<HTMLElement>('[data-testid="tile"][data-local="false"]').forEach((tile) => {
        const name = tile.dataset.name!;
        if (ignored.includes(name)) return;
        const v = tile.querySelector("video") as HTMLVideoElement | null;
        const now = performance.now();
        const s = (w.__stall[name] ??= { t: -1, since: now, max: 0 });
        if (v && v.videoWidth > 0 && v.currentTime !== s.t) {
          s.t = v.currentTime;
          s.since = now;
        } else {
          s.max = Math.max(s.max, now - s.since);
        }
      });
    }, 100);
  }, ignore);
}

async function longestStall(p: Person): Promise<number> {
  const stalls: Record<string, { max: number }> = await p.page.evaluate(() => (window as any).__stall);
  console.log(`${p.name}: longest stall per tile (ms)`, JSON.stringify(Object.fromEntries(Object.entries(stalls).map(([k, v]) => [k, Math.round(v.max)]))));
  return Math.max(0, ...Object.values(stalls).map((s) => s.max));
}

test("an automatic call moves to the media server as it grows and back to direct when small", async ({ browser }) => {
  // The instance that switches at the third arrival (the fifth by default:
  // the rule itself is tested in domain::media::paths).
  const people: Person[] = [];
  for (const label of ["ann", "bob", "cy"]) people.push(await smallPerson(browser, label, switchURL));
  const [a, b, c] = people;
  const path = await meetingWith(a, [b, c]);
  await joinCall(a, path);
  await joinCall(b, path);
  for (const p of [a, b]) await expect(p.page.getByTestId("media-path")).toHaveAttribute("data-path", "direct");
  await expectPlaying(tileOf(a.page, b.name));
  await expectPlaying(tileOf(b.page, a.name));
  await watchStalls(a, [c.name]);
  await watchStalls(b, [c.name]);

  // The arrival that makes three: everyone moves, nobody's video stops for long.
  await joinCall(c, path);
  for (const p of people) {
    await expect(p.page.getByTestId("media-path")).toHaveAttribute("data-path", "server", { timeout: 20_000 });
  }
  for (const p of people) {
    // Only the media-server connection is left, decoding both others.
    await expect.poll(async () => (await received(p)).connections, { timeout: 30_000 }).toBe(1);
    await expect.poll(async () => (await received(p)).decoding, { timeout: 30_000 }).toBe(2);
    for (const other of people.filter((o) => o !== p)) await expectPlaying(tileOf(p.page, other.name));
  }
  for (const p of [a, b]) {
    expect(await longestStall(p), `${p.name}'s longest remote video stall while moving (ms)`).toBeLessThan(2_000);
  }

  // One leaves: after 30 s at two people the call goes back to direct.
  await c.page.getByTestId("leave-button").click();
  await expect(remoteTiles(a.page)).toHaveCount(1);
  await watchStalls(a, []);
  await watchStalls(b, []);
  for (const p of [a, b]) {
    await expect(p.page.getByTestId("media-path")).toHaveAttribute("data-path", "direct", { timeout: 60_000 });
  }
  for (const p of [a, b]) {
    // The media-server connection closed; the direct one shows the other.
    await expect.poll(async () => (await received(p)).connections, { timeout: 20_000 }).toBe(1);
    await expect.poll(async () => (await received(p)).decoding, { timeout: 20_000 }).toBe(1);
  }
  await expectPlaying(tileOf(a.page, b.name));
  await expectPlaying(tileOf(b.page, a.name));
  for (const p of [a, b]) {
    expect(await longestStall(p), `${p.name}'s longest stall going back to direct (ms)`).toBeLessThan(2_000);
  }
  await closeAll(people);
});
