// A few retrying assertions on Playwright locators (playwright-core has no `expect`): each
// re-reads the page until the condition holds or the timeout passes, then fails with what it
// last saw.

const TIMEOUT_MS = 10_000;
const POLL_MS = 50;

async function until(describe, read, check, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await read();
      if (check(last)) return;
    } catch (error) {
      last = `error: ${error.message}`;
    }
    if (Date.now() > deadline) {
      throw new Error(`expected ${describe}, last saw ${JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export function expect(locator) {
  return {
    /** The (first) element's text, trimmed, equals `text`. */
    toHaveText: (text) =>
      until(
        `${locator} to have text ${JSON.stringify(text)}`,
        async () => ((await locator.count()) ? (await locator.first().textContent()).trim() : '<absent>'),
        (seen) => seen === text,
      ),
    /** Exactly `count` elements match. */
    toHaveCount: (count) => until(`${locator} to match ${count} element(s)`, () => locator.count(), (seen) => seen === count),
    /** No element matches, or the first one is hidden. */
    toBeHidden: () =>
      until(
        `${locator} to be hidden`,
        async () => ((await locator.count()) ? locator.first().isHidden() : true),
        (hidden) => hidden === true,
      ),
  };
}
