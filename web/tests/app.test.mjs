// The web client in Debian's Chromium against a real `herald` in its default mode: the
// in-memory broker and a fresh SQLite file.

import { after, before, describe, test } from 'node:test';

import { expect } from './expect.mjs';
import { go, launchBrowser, message, say, signUp, startHerald, uniqueName, waitConnected } from './harness.mjs';
import { scenarios } from './scenarios.mjs';

describe('herald (in-memory broker, SQLite) in the browser', () => {
  const ctx = {};
  before(async () => {
    ctx.herald = await startHerald();
    ctx.url = ctx.herald.url;
    ctx.browser = await launchBrowser();
  });
  after(async () => {
    await ctx.browser?.close();
    await ctx.herald?.stop();
  });

  for (const scenario of Object.values(scenarios)) {
    test(scenario.name, () => scenario.run(ctx));
  }
});

describe('herald restarted under an open page', () => {
  test('the page reconnects by itself, still signed in, and the tasks are still there', async () => {
    const first = await startHerald();
    const browser = await launchBrowser();
    let second;
    try {
      const name = uniqueName('fay');
      const fay = await signUp(browser, first.url, name);
      await go(fay.page, '#/tasks');
      await fay.page.getByLabel('Task title').fill('Survive a restart');
      await fay.page.getByRole('button', { name: 'Create task' }).click();
      await fay.page.locator('.card', { hasText: 'Survive a restart' }).waitFor();

      await first.stop({ keep: true });
      await fay.page.locator('[data-testid="connection"][data-state="reconnecting"]').waitFor();
      const { port } = new URL(first.url);
      second = await startHerald({ HERALD_LISTEN: `127.0.0.1:${port}` }, { dir: first.dir });
      await waitConnected(fay.page);
      await expect(fay.page.getByTestId('me')).toHaveText(name);
      await fay.page.locator('.card', { hasText: 'Survive a restart' }).waitFor();
      await go(fay.page, `#/chat/${uniqueName('room')}`);
      await say(fay.page, 'after the restart');
      await message(fay.page, 'after the restart').waitFor();
    } finally {
      await browser.close();
      if (second) await second.stop();
      else await first.stop();
    }
  });
});
