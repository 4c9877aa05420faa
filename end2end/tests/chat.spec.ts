import { test, expect } from "./fixtures";
import { closeAll, joinCall, meetingWith, person, type Person } from "./call-helpers";

test.describe.configure({ timeout: 90_000 });

async function openChat(p: Person) {
  await p.page.getByTestId("chat-button").click();
  await expect(p.page.getByTestId("chat-panel")).toBeVisible();
}

async function say(p: Person, text: string, to?: Person) {
  const panel = p.page.getByTestId("chat-panel");
  if (to) {
    await panel.getByTestId("chat-to").selectOption({ label: to.name });
  } else {
    await panel.getByTestId("chat-to").selectOption({ value: "" });
  }
  await panel.getByTestId("chat-input").fill(text);
  await panel.getByTestId("chat-input").press("Enter");
  // Confirmed as stored.
  await expect(panel.getByTestId("chat-message").filter({ hasText: text }).last()).toHaveAttribute("data-status", "sent");
}

function messages(p: Person) {
  return p.page.getByTestId("chat-panel").getByTestId("chat-message");
}

test("chat both ways, history for late joiners, private messages, text only, transcript after the end", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  const cat = await person(browser, "cat");
  const path = await meetingWith(ann, [bob, cat]);
  await joinCall(ann, path);
  await joinCall(bob, path);

  // Bob's panel is closed: an unread badge counts Ann's message.
  await openChat(ann);
  await say(ann, "Hello Bob, agenda: https://example.org/agenda.");
  await expect(bob.page.getByTestId("chat-unread")).toHaveText("1");
  await openChat(bob);
  await expect(bob.page.getByTestId("chat-unread")).toHaveCount(0);
  await expect(messages(bob)).toHaveCount(1);
  const link = messages(bob).first().locator("a");
  await expect(link).toHaveAttribute("href", "https://example.org/agenda");
  await expect(link).toHaveAttribute("target", "_blank");
  await expect(link).toHaveAttribute("rel", /noopener/);
  await expect(link).toHaveAttribute("rel", /noreferrer/);
  await say(bob, "Hi Ann!");
  await expect(messages(ann).last()).toContainText("Hi Ann!");
  await expect(messages(ann).last()).toContainText(bob.name);

  // Markup and script stay text.
  const payload = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
  await say(ann, payload);
  await expect(messages(bob).last().locator(".chat-text")).toHaveText(payload);
  await expect(messages(bob).last().locator("img, script")).toHaveCount(0);
  expect(await bob.page.evaluate(() => (window as any).__xss)).toBeUndefined();

  // Cat comes later and sees everything said so far, in order.
  await joinCall(cat, path);
  await openChat(cat);
  await expect(messages(cat)).toHaveCount(3);
  await expect(messages(cat).nth(0)).toContainText("Hello Bob");
  await expect(messages(cat).nth(1)).toContainText("Hi Ann!");

  // A private message reaches Bob only.
  await say(ann, "Bob, a word in private", bob);
  await expect(messages(bob).last()).toContainText("Bob, a word in private");
  await expect(messages(bob).last()).toHaveAttribute("data-private", "true");
  await say(bob, "Public again");
  await expect(messages(cat).last()).toContainText("Public again");
  await expect(cat.page.getByTestId("chat-panel")).not.toContainText("a word in private");

  // Too long: said so, nothing sent.
  await cat.page.getByTestId("chat-input").fill("x".repeat(2001));
  await expect(cat.page.getByTestId("chat-notice")).toContainText("at most 2000");
  await expect(cat.page.getByTestId("chat-send")).toBeDisabled();

  // The host ends the meeting; the transcript is on the meeting page.
  ann.page.once("dialog", (d) => d.accept());
  await ann.page.getByTestId("end-button").click();
  await expect(bob.page.getByTestId("call-closed")).toHaveAttribute("data-reason", "ended");
  await bob.page.goto(path);
  const transcript = bob.page.getByTestId("transcript");
  await expect(transcript).toContainText("Hello Bob");
  await expect(transcript).toContainText("Bob, a word in private");
  await expect(transcript.getByTestId("transcript-md")).toHaveAttribute("href", `${path}/chat.md`);
  await cat.page.goto(path);
  await expect(cat.page.getByTestId("transcript")).toContainText("Public again");
  await expect(cat.page.getByTestId("transcript")).not.toContainText("a word in private");
  const download = await cat.page.request.get(`${path}/chat.txt`);
  expect(download.status()).toBe(200);
  expect(await download.text()).toContain(`${ann.name}: ${payload}`);
  await closeAll([ann, bob, cat]);
});
