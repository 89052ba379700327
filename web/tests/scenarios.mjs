// The browser scenarios, each against a running herald (`url`) in a shared browser: chat and
// presence between two users, a task assignment seen live as a notification and on the board,
// text that looks like HTML shown as text, messages missed while offline recovered after
// reconnecting, a session outliving its access token, and a reload.
//
// Every wait is on a condition in the page (Playwright locators), never a fixed sleep.

import assert from 'node:assert/strict';

import { expect } from './expect.mjs';
import { ACCESS_TTL_SECONDS, PASSWORD, go, message, say, signUp, uniqueName, waitConnected } from './harness.mjs';

/** Two signed-up users, each in a browser context of their own. */
async function twoUsers(browser, url) {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const alice = { name: aliceName, ...(await signUp(browser, url, aliceName)) };
  const bob = { name: bobName, ...(await signUp(browser, url, bobName)) };
  return { alice, bob, close: () => Promise.all([alice.context.close(), bob.context.close()]) };
}

function noDialogsOrErrors(...users) {
  for (const user of users) {
    assert.deepEqual(user.page.dialogs, [], `${user.name} saw no dialog`);
    assert.deepEqual(user.page.errors, [], `${user.name} had no page error`);
  }
}

/** name → scenario; each takes `{ browser, url }`. */
export const scenarios = {
  chat: {
    name: 'two users chat in a room and see each other online',
    async run({ browser, url }) {
      const { alice, bob, close } = await twoUsers(browser, url);
      const room = uniqueName('room');
      await go(alice.page, `#/chat/${room}`);
      await go(bob.page, `#/chat/${room}`);

      // Presence: each sees both names in the room's online list.
      for (const viewer of [alice, bob]) {
        for (const person of [alice, bob]) {
          await viewer.page.locator('.online-list .person', { hasText: person.name }).waitFor();
        }
        await expect(viewer.page.getByTestId('online-count')).toHaveText('2');
      }

      await say(alice.page, `hello ${bob.name}`);
      const atBob = message(bob.page, `hello ${bob.name}`);
      await atBob.waitFor();
      await expect(atBob.locator('.author')).toHaveText(alice.name);

      await say(bob.page, 'hi alice, good to see you');
      const atAlice = message(alice.page, 'hi alice, good to see you');
      await atAlice.waitFor();
      await expect(atAlice.locator('.author')).toHaveText(bob.name);

      // Every message has an author and a time.
      for (const viewer of [alice, bob]) {
        const messages = viewer.page.locator('.messages .message');
        await expect(messages).toHaveCount(2);
        for (const item of await messages.all()) {
          assert.notEqual((await item.locator('.author').textContent()).trim(), '');
          assert.match(await item.locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
        }
      }

      // History on entry: a third visit to the room shows what was said before.
      const carolName = uniqueName('carol');
      const carol = { name: carolName, ...(await signUp(browser, url, carolName)) };
      await go(carol.page, `#/chat/${room}`);
      await message(carol.page, `hello ${bob.name}`).waitFor();
      await message(carol.page, 'hi alice, good to see you').waitFor();
      await alice.page.locator('.online-list .person', { hasText: carol.name }).waitFor();

      // Leaving the room (here: closing the tab) removes the user from the others' list.
      await carol.context.close();
      await expect(alice.page.locator('.online-list .person', { hasText: carol.name })).toHaveCount(0);

      noDialogsOrErrors(alice, bob);
      await close();
    },
  },
  tasks: {
    name: 'a task assigned to someone reaches them live: notification, unread count, board',
    async run({ browser, url }) {
      const { alice, bob, close } = await twoUsers(browser, url);
      await bob.page.evaluate(() => {
        window.loadedOnce = true;
      });
      await go(bob.page, '#/tasks');
      await go(alice.page, '#/tasks');

      const title = `Review the release notes ${uniqueName('')}`;
      await alice.page.getByLabel('Task title').fill(title);
      await alice.page.getByLabel('Task description').fill('Before Friday, please.');
      await alice.page.getByLabel('Assignee', { exact: true }).fill(bob.name.slice(0, 6));
      await alice.page.locator('.new-task .picker-option', { hasText: bob.name }).click();
      await expect(alice.page.locator('.new-task .chosen')).toHaveText(`Assigned to ${bob.name}`);
      await alice.page.getByRole('button', { name: 'Create task' }).click();

      // Bob's board shows the task without a reload, in "To do", assigned to him.
      const card = bob.page.locator('.card', { hasText: title });
      await card.waitFor();
      await expect(card.locator('.assignee')).toHaveText('you');
      await expect(card.locator('.creator')).toHaveText(alice.name);
      assert.equal(await card.evaluate((el) => el.closest('.column').dataset.status), 'todo');

      // ... and an unread notification.
      await expect(bob.page.getByTestId('unread')).toHaveText('1');
      await go(bob.page, '#/notifications');
      const item = bob.page.locator('.feed-item.task-assigned', { hasText: `${alice.name} assigned you "${title}"` });
      await item.waitFor();
      await expect(bob.page.getByTestId('unread')).toBeHidden();

      // Opening the notification leads to the task; bob starts it, and alice's board follows.
      await item.locator('button').click();
      await bob.page.locator('.card.highlight', { hasText: title }).waitFor();
      await card.getByLabel(`Status of ${title}`).selectOption('in_progress');
      await alice.page.locator('.column-in_progress .card', { hasText: title }).waitFor();
      await bob.page.locator('.column-in_progress .card', { hasText: title }).waitFor();

      // Everyone else hears about new tasks too: alice gets a feed item for bob's new task.
      const bobsTask = `Order more coffee ${uniqueName('')}`;
      await bob.page.getByLabel('Task title').fill(bobsTask);
      await bob.page.getByRole('button', { name: 'Create task' }).click();
      await alice.page.locator('.column-todo .card', { hasText: bobsTask }).waitFor();
      await expect(alice.page.getByTestId('unread')).toHaveText('1');
      await go(alice.page, '#/notifications');
      await alice.page.locator('.feed-item.task-created', { hasText: `New task created: ${bobsTask}` }).waitFor();

      assert.equal(await bob.page.evaluate(() => window.loadedOnce), true, 'bob never reloaded');
      noDialogsOrErrors(alice, bob);
      await close();
    },
  },
  escaping: {
    name: 'text that looks like HTML is shown as text, in chat and on the board',
    async run({ browser, url }) {
      const { alice, bob, close } = await twoUsers(browser, url);
      const room = uniqueName('room');
      await go(alice.page, `#/chat/${room}`);
      await go(bob.page, `#/chat/${room}`);
      await bob.page.locator('.online-list .person', { hasText: alice.name }).waitFor();

      const payload = '<img src=x onerror=alert(1)>';
      await say(alice.page, payload);
      for (const viewer of [alice, bob]) {
        const item = message(viewer.page, payload);
        await item.waitFor();
        await expect(item.locator('.text')).toHaveText(payload);
        await expect(viewer.page.locator('.messages img')).toHaveCount(0);
      }

      const title = `<b>bold</b><script>alert(2)</script><img src=x onerror=alert(3)> ${uniqueName('')}`;
      await go(alice.page, '#/tasks');
      await go(bob.page, '#/tasks');
      await alice.page.getByLabel('Task title').fill(title);
      await alice.page.getByRole('button', { name: 'Create task' }).click();
      for (const viewer of [alice, bob]) {
        const card = viewer.page.locator('.card', { has: viewer.page.locator('.card-title').getByText(title, { exact: true }) });
        await card.waitFor();
        await expect(viewer.page.locator('.board img, .board b, .board script')).toHaveCount(0);
      }
      await go(bob.page, '#/notifications');
      await bob.page.locator('.feed-item .feed-text').getByText(`New task created: ${title}`, { exact: true }).waitFor();
      await expect(bob.page.locator('.feed img, .feed b, .feed script')).toHaveCount(0);

      noDialogsOrErrors(alice, bob);
      await close();
    },
  },
  offline: {
    name: 'a client that goes offline shows it, and sees the messages it missed when back',
    async run({ browser, url }) {
      const { alice, bob, close } = await twoUsers(browser, url);
      const room = uniqueName('room');
      await go(alice.page, `#/chat/${room}`);
      await go(bob.page, `#/chat/${room}`);
      await say(alice.page, 'before the tunnel');
      await message(bob.page, 'before the tunnel').waitFor();
      await bob.page.evaluate(() => {
        window.loadedOnce = true;
      });

      await bob.context.setOffline(true);
      await bob.page.locator('[data-testid="connection"][data-state="reconnecting"]').waitFor();
      await expect(bob.page.getByTestId('connection')).toHaveText('Reconnecting…');
      // Alice sees bob leave, then talks while he is away.
      await expect(alice.page.locator('.online-list .person', { hasText: bob.name })).toHaveCount(0);
      const missed = ['in the tunnel 1', 'in the tunnel 2', 'in the tunnel 3'];
      for (const text of missed) await say(alice.page, text);

      await bob.context.setOffline(false);
      await waitConnected(bob.page);
      // The SDK recovered the subscription from its last position (no history reload).
      await bob.page.locator('.chat[data-recovered="true"]').waitFor();
      for (const text of missed) await message(bob.page, text).waitFor();
      // In order, once each, after what he saw before.
      const texts = await bob.page.locator('.messages .message .text').allTextContents();
      assert.deepEqual(texts, ['before the tunnel', ...missed]);
      await alice.page.locator('.online-list .person', { hasText: bob.name }).waitFor();

      // Bob can talk again on the recovered connection.
      await say(bob.page, 'back again');
      await message(alice.page, 'back again').waitFor();

      assert.equal(await bob.page.evaluate(() => window.loadedOnce), true, 'bob never reloaded');
      noDialogsOrErrors(alice, bob);
      await close();
    },
  },
  refresh: {
    name: 'the session outlives its short-lived access token',
    async run({ browser, url }) {
      const name = uniqueName('erin');
      const erin = { name, ...(await signUp(browser, url, name)) };
      const token = () => erin.page.evaluate(() => JSON.parse(localStorage.getItem('herald.session')).accessToken);
      const first = await token();
      // The SDK asks for a new token before the old one expires (ACCESS_TTL_SECONDS in the
      // harness); the client gets one through /auth/refresh.
      await erin.page.waitForFunction(
        (old) => JSON.parse(localStorage.getItem('herald.session')).accessToken !== old,
        first,
        { timeout: (ACCESS_TTL_SECONDS + 20) * 1000, polling: 250 },
      );
      await expect(erin.page.getByTestId('connection')).toHaveText('Live');
      const room = uniqueName('room');
      await go(erin.page, `#/chat/${room}`);
      await say(erin.page, 'still here');
      await go(erin.page, '#/tasks');
      await erin.page.getByLabel('Task title').fill('Refreshed and working');
      await erin.page.getByRole('button', { name: 'Create task' }).click();
      await erin.page.locator('.card', { hasText: 'Refreshed and working' }).waitFor();
      noDialogsOrErrors(erin);
      await erin.context.close();
    },
  },
  reload: {
    name: 'a reload keeps the session and the room history',
    async run({ browser, url }) {
      const name = uniqueName('dora');
      const dora = { name, ...(await signUp(browser, url, name)) };
      const room = uniqueName('room');
      await go(dora.page, `#/chat/${room}`);
      await say(dora.page, 'note to self');
      await dora.page.reload();
      await dora.page.getByTestId('me').filter({ hasText: name }).waitFor();
      await waitConnected(dora.page);
      await message(dora.page, 'note to self').waitFor();
      await dora.page.getByRole('button', { name: 'Sign out' }).click();
      await dora.page.getByRole('button', { name: 'Sign in' }).waitFor();
      // Wrong password, then the right one.
      await dora.page.getByLabel('Username').fill(name);
      await dora.page.getByLabel('Password').fill('not the password');
      await dora.page.getByRole('button', { name: 'Sign in' }).click();
      await expect(dora.page.getByRole('alert')).toHaveText('Wrong username or password.');
      await dora.page.getByLabel('Password').fill(PASSWORD);
      await dora.page.getByRole('button', { name: 'Sign in' }).click();
      await waitConnected(dora.page);
      noDialogsOrErrors(dora);
      await dora.context.close();
    },
  },
  toast: {
    name: 'a notice covers none of the controls, on a desktop or a phone screen',
    async run({ browser, url }) {
      for (const viewport of [{ width: 1280, height: 800 }, { width: 1024, height: 700 }, { width: 390, height: 780 }]) {
        const name = uniqueName('gil');
        const gil = { name, ...(await signUp(browser, url, name, { viewport })) };
        await go(gil.page, `#/chat/${uniqueName('room')}`);
        await expect(gil.page.getByTestId('online-count')).toHaveText('1');
        // An invalid room name shows an error notice.
        await gil.page.getByLabel('Room name').fill('not a room!');
        await gil.page.getByRole('button', { name: 'Join' }).click();
        const notice = gil.page.locator('.notice');
        await notice.waitFor();
        const noticeBox = await notice.boundingBox();
        const controls = gil.page.locator(
          '.topbar a, .topbar button, [data-testid="connection"], [data-testid="online-count"], .join-room input, .join-room button, .composer textarea, .composer input, .composer button',
        );
        const count = await controls.count();
        assert.ok(count >= 6, `found the controls (${count})`);
        for (let i = 0; i < count; i += 1) {
          const control = controls.nth(i);
          const box = await control.boundingBox();
          if (!box) continue;
          const what = `${await control.evaluate((e) => e.outerHTML.slice(0, 80))} at ${viewport.width}px`;
          assert.ok(!intersects(noticeBox, box), `the notice ${JSON.stringify(noticeBox)} covers ${what} ${JSON.stringify(box)}`);
        }
        noDialogsOrErrors(gil);
        await gil.context.close();
      }
    },
  },
};

/** Whether two boxes (`{x, y, width, height}`) overlap. */
function intersects(a, b) {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}
