import { test, expect, hydrated } from "./fixtures";
import { closeAll, expectPlaying, joinCall, meetingWith, person, tileOf } from "./call-helpers";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

// Pictures of the call, the lobby and the self-test page at desktop and
// phone size. `scripts/screenshots.sh` writes them into docs/screenshots
// (linked from the README); in the test run they go to a scratch folder and
// are only checked to be real pictures of the page.
const outDir = process.env.MOIM_SCREENSHOTS_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), "moim-shots-"));
fs.mkdirSync(outDir, { recursive: true });

const sizes = [
  { name: "desktop", viewport: { width: 1280, height: 800 } },
  { name: "phone", viewport: { width: 390, height: 844 } },
] as const;

test.describe.configure({ timeout: 120_000 });

function expectPng(file: string) {
  const bytes = fs.readFileSync(file);
  expect(bytes.length).toBeGreaterThan(5_000);
  expect(bytes.subarray(1, 4).toString()).toBe("PNG");
}

for (const size of sizes) {
  test(`screenshots at ${size.name} size`, async ({ browser }) => {
    const ann = await person(browser, "Ann");
    const bob = await person(browser, "Bob");
    for (const p of [ann, bob]) await p.page.setViewportSize(size.viewport);
    const meeting = await meetingWith(ann, [bob]);
    await joinCall(ann, meeting);

    // The lobby, as Bob sees it before going in.
    await bob.page.goto(`${meeting}/join`);
    await hydrated(bob.page);
    await expect.poll(() => bob.page.locator("#device-camera option").count()).toBeGreaterThan(0);
    await bob.page.waitForTimeout(1_000);
    const lobby = path.join(outDir, `lobby-${size.name}.png`);
    await bob.page.screenshot({ path: lobby });
    expectPng(lobby);

    // The call with both in it, a raised hand and a reaction.
    await joinCall(bob, meeting);
    await expectPlaying(tileOf(ann.page, bob.name));
    await bob.page.getByTestId("hand-button").click();
    await bob.page.getByRole("button", { name: "React" }).click();
    await bob.page.getByRole("button", { name: "Celebrate" }).click();
    await expect(tileOf(ann.page, bob.name).getByTestId("reaction")).toHaveCount(1);
    const call = path.join(outDir, `call-${size.name}.png`);
    await ann.page.screenshot({ path: call });
    expectPng(call);

    // The self-test page after its device check.
    await ann.page.goto("/selftest");
    await hydrated(ann.page);
    await ann.page.getByRole("button", { name: "Start camera and microphone" }).click();
    await expect(ann.page.getByTestId("selftest-camera")).toContainText("Your camera works");
    const selftest = path.join(outDir, `selftest-${size.name}.png`);
    await ann.page.screenshot({ path: selftest, fullPage: true });
    expectPng(selftest);
    await closeAll([ann, bob]);
  });
}
