import { test, expect } from "./fixtures";
import { closeAll, expectPlaying, joinCall, meetingWith, person, tileOf } from "./call-helpers";

test.describe.configure({ timeout: 90_000 });

// The second moim of playwright.config.ts, next to the main one.
const relayURL = `http://127.0.0.1:${Number(process.env.MOIM_E2E_PORT ?? 3100) + 1}`;

test("a call relayed through coturn uses relay candidates on both sides", async ({ browser }) => {
  // This moim hands out coturn credentials and iceTransportPolicy "relay".
  const ann = await person(browser, "ann", relayURL);
  const bob = await person(browser, "bob", relayURL);
  const path = await meetingWith(ann, [bob]);
  await joinCall(ann, path);
  await joinCall(bob, path);
  await expectPlaying(tileOf(ann.page, bob.name));
  await expectPlaying(tileOf(bob.page, ann.name));

  for (const p of [ann, bob]) {
    const config = await p.page.evaluate(() => {
      const pc = (window as any).__pcs.at(-1) as RTCPeerConnection;
      const c = pc.getConfiguration();
      return { policy: c.iceTransportPolicy, urls: c.iceServers?.flatMap((s) => s.urls) };
    });
    expect(config.policy).toBe("relay");
    expect(JSON.stringify(config.urls)).toContain("turn:127.0.0.1");
    // The pair media actually flows over: relay at both ends.
    const selectedPair = () => p.page.evaluate(async () => {
      const pc = (window as any).__pcs.at(-1) as RTCPeerConnection;
      const stats = await pc.getStats();
      let pairId: string | undefined;
      stats.forEach((s: any) => {
        if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
      });
      const selected = pairId ? stats.get(pairId) : undefined;
      return selected
        ? {
            state: selected.state,
            local: stats.get(selected.localCandidateId)?.candidateType,
            remote: stats.get(selected.remoteCandidateId)?.candidateType,
            bytes: selected.bytesReceived,
          }
        : null;
    });
    // Chrome reports the selected pair "in-progress" while one of its
    // periodic checks is out, even with media flowing: its state is read
    // until that check has come back.
    await expect.poll(async () => (await selectedPair())?.state, { timeout: 10_000 }).toBe("succeeded");
    const pair = await selectedPair();
    expect(pair).not.toBeNull();
    expect(pair!.state).toBe("succeeded");
    expect(pair!.local).toBe("relay");
    expect(pair!.remote).toBe("relay");
    expect(pair!.bytes).toBeGreaterThan(0);
  }

  // The credentials last 60 s here: before they run out, the page fetches
  // new ones and moves its relays to them, and the call goes on.
  const username = (p: typeof ann) =>
    p.page.evaluate(() => {
      const pc = (window as any).__pcs.at(-1) as RTCPeerConnection;
      return (pc.getConfiguration().iceServers ?? []).map((s) => s.username).join(",");
    });
  const before = await username(ann);
  await expect.poll(() => username(ann), { timeout: 45_000, intervals: [2_000] }).not.toBe(before);
  await expectPlaying(tileOf(ann.page, bob.name));
  await expectPlaying(tileOf(bob.page, ann.name));
  await closeAll([ann, bob]);
});
