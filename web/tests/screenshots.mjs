// Saves screenshots of the main screens into docs/screenshots/ (`make screenshots`): sign-in,
// a chat room, the task board, the notification feed, and the chat at phone width. It starts
// its own herald with a fresh database and fills it with a short conversation and a few tasks.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { go, launchBrowser, message, say, signUp, startHerald } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.env.SCREENSHOT_DIR ?? path.resolve(here, '../../docs/screenshots');
await mkdir(out, { recursive: true });

const herald = await startHerald();
const browser = await launchBrowser();
try {
  const shot = async (page, name) => {
    // Passing notices would hide part of the screen.
    await page.evaluate(() => document.querySelectorAll('.notice').forEach((notice) => notice.remove()));
    await page.screenshot({ path: path.join(out, `${name}.png`) });
  };

  // Sign-in.
  const visitor = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const signInPage = await visitor.newPage();
  await signInPage.goto(herald.url);
  await signInPage.getByRole('button', { name: 'Create account' }).waitFor();
  await shot(signInPage, 'sign-in');
  await visitor.close();

  const alice = await signUp(browser, herald.url, 'alice', { viewport: { width: 1280, height: 760 } });
  const bob = await signUp(browser, herald.url, 'bob', { viewport: { width: 1280, height: 760 } });
  const carol = await signUp(browser, herald.url, 'carol', { viewport: { width: 390, height: 780 } });
  for (const user of [alice, bob, carol]) await go(user.page, '#/chat/lobby');
  await alice.page.locator('.online-list .person', { hasText: 'carol' }).waitFor();

  await say(alice.page, 'Morning! The release branch is cut.');
  await say(bob.page, 'Great, I will start on the release notes.');
  await say(carol.page, 'I can review them after lunch.');
  await say(alice.page, 'Thanks both. Tasks are on the board.');
  await message(carol.page, 'Thanks both. Tasks are on the board.').waitFor();

  // Tasks: alice creates and assigns, bob picks one up.
  await go(alice.page, '#/tasks');
  const create = async (title, description, assignee) => {
    await alice.page.getByLabel('Task title').fill(title);
    await alice.page.getByLabel('Task description').fill(description);
    if (assignee) {
      await alice.page.getByLabel('Assignee', { exact: true }).fill(assignee);
      await alice.page.locator('.new-task .picker-option', { hasText: assignee }).click();
    }
    await alice.page.getByRole('button', { name: 'Create task' }).click();
    await alice.page.locator('.card', { hasText: title }).waitFor();
  };
  await create('Write the release notes', 'Everything merged since 0.3.', 'bob');
  await create('Review the release notes', '', 'carol');
  await create('Tag v0.4.0', 'After the notes are reviewed.', '');
  await create('Update the docs site', 'New screenshots included.', 'alice');
  await go(bob.page, '#/tasks');
  const notes = bob.page.locator('.card', { hasText: 'Write the release notes' });
  await notes.getByLabel('Status of Write the release notes').selectOption('in_progress');
  await alice.page.locator('.column-in_progress .card', { hasText: 'Write the release notes' }).waitFor();
  await alice.page.locator('.column-todo .card', { hasText: 'Update the docs site' }).getByLabel('Status of Update the docs site').selectOption('done');
  await alice.page.locator('.column-done .card', { hasText: 'Update the docs site' }).waitFor();

  await go(bob.page, '#/chat/lobby');
  await bob.page.getByTestId('unread').waitFor();
  await shot(bob.page, 'chat');
  await go(bob.page, '#/tasks');
  await bob.page.locator('.column-in_progress .card', { hasText: 'Write the release notes' }).waitFor();
  await shot(bob.page, 'tasks');
  await go(carol.page, '#/notifications');
  await carol.page.locator('.feed-item', { hasText: 'assigned you' }).waitFor();
  await go(bob.page, '#/notifications');
  await bob.page.locator('.feed-item', { hasText: 'assigned you' }).waitFor();
  await shot(bob.page, 'notifications');
  await go(carol.page, '#/chat/lobby');
  await message(carol.page, 'Thanks both. Tasks are on the board.').waitFor();
  await carol.page.evaluate(() => document.activeElement?.blur());
  await shot(carol.page, 'phone-chat');
  console.log(`screenshots saved in ${out}`);
} finally {
  await browser.close();
  await herald.stop();
}
