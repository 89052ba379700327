// The npm centrifuge SDK against Herald: real herald-auth, real herald-gateway, real Redis.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ACCESS_TTL_SECONDS, Herald, eventually, once, sleep } from './harness.js';

let herald;

before(async () => {
  herald = await Herald.start();
});

after(async () => {
  await herald?.stop();
});

/** A connected client of `user`; disconnected at the end of the test by `t.after`. */
async function connected(t, user, options) {
  const client = herald.client(user, options);
  const connectedEvent = once(client, 'connected');
  client.connect();
  const ctx = await connectedEvent;
  t.after(() => client.disconnect());
  return { client, ctx };
}

async function subscribed(client, channel, options = {}) {
  const sub = client.newSubscription(channel, options);
  const ready = once(sub, 'subscribed');
  sub.subscribe();
  return { sub, ctx: await ready };
}

describe('the centrifuge SDK against Herald', () => {
  test('connects, subscribes, publishes and receives with the author info', async (t) => {
    const alice = await herald.user('alice');
    const bob = await herald.user('bob');
    const { client: a, ctx: aliceCtx } = await connected(t, alice);
    const { client: b } = await connected(t, bob);
    const { sub: aliceSub } = await subscribed(a, 'chat:sdk-room');
    const { sub: bobSub } = await subscribed(b, 'chat:sdk-room');
    const received = once(bobSub, 'publication');
    await aliceSub.publish({ text: 'hello from the sdk' });
    const publication = await received;
    assert.deepEqual(publication.data, { text: 'hello from the sdk' });
    assert.equal(publication.info.user, alice.id);
    assert.equal(publication.info.client, aliceCtx.client);
    assert.deepEqual(publication.info.connInfo, { name: alice.username });
    assert.ok(publication.offset >= 1);
  });

  test('lists presence and presence stats', async (t) => {
    const alice = await herald.user('alice');
    const bob = await herald.user('bob');
    const { client: a, ctx } = await connected(t, alice);
    const { client: b } = await connected(t, bob);
    const { sub } = await subscribed(a, 'chat:sdk-presence');
    await subscribed(b, 'chat:sdk-presence');
    const presence = await sub.presence();
    const clients = Object.values(presence.clients);
    assert.equal(clients.length, 2);
    const me = presence.clients[ctx.client];
    assert.equal(me.user, alice.id);
    assert.deepEqual(me.connInfo, { name: alice.username });
    const stats = await sub.presenceStats();
    assert.deepEqual(stats, { numClients: 2, numUsers: 2 });
  });

  test('reads history', async (t) => {
    const alice = await herald.user('alice');
    const { client } = await connected(t, alice);
    const { sub } = await subscribed(client, 'chat:sdk-history');
    for (const text of ['one', 'two', 'three']) await sub.publish({ text });
    const history = await sub.history({ limit: 10 });
    assert.deepEqual(history.publications.map((p) => p.data.text), ['one', 'two', 'three']);
    assert.equal(history.offset, 3);
    assert.ok(history.epoch.length > 0);
    const latest = await sub.history({ limit: 1, reverse: true });
    assert.deepEqual(latest.publications.map((p) => p.data.text), ['three']);
  });

  test('recovers missed publications in order after a disconnect', async (t) => {
    const alice = await herald.user('alice');
    const bob = await herald.user('bob');
    const { client: a } = await connected(t, alice);
    const { client: b } = await connected(t, bob);
    const { sub: aliceSub } = await subscribed(a, 'chat:sdk-recovery');
    const { sub: bobSub } = await subscribed(b, 'chat:sdk-recovery');
    const first = once(aliceSub, 'publication');
    await bobSub.publish({ text: 'seen' });
    await first;

    a.disconnect();
    for (const text of ['missed 1', 'missed 2', 'missed 3']) await bobSub.publish({ text });

    const texts = [];
    aliceSub.on('publication', (ctx) => texts.push(ctx.data.text));
    const resubscribed = once(aliceSub, 'subscribed');
    a.connect();
    const ctx = await resubscribed;
    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, true);
    await eventually('the missed publications', () => texts.length >= 3);
    assert.deepEqual(texts, ['missed 1', 'missed 2', 'missed 3']);
  });

  test('receives the personal notifications channel without subscribing', async (t) => {
    const alice = await herald.user('alice');
    const channel = `notifications#${alice.id}`;
    const client = herald.client(alice);
    const serverSub = once(client, 'subscribed', (ctx) => ctx.channel === channel);
    const connectedEvent = once(client, 'connected');
    client.connect();
    t.after(() => client.disconnect());
    await connectedEvent;
    const subCtx = await serverSub;
    assert.equal(subCtx.recoverable, true);
    const received = once(client, 'publication', (ctx) => ctx.channel === channel);
    herald.publish(channel, { type: 'task.assigned', text: 'bob assigned you "Write docs"' });
    const publication = await received;
    assert.equal(publication.data.text, 'bob assigned you "Write docs"');
  });

  test('refreshes an expired token and stays connected past its expiry', async (t) => {
    const alice = await herald.user('alice');
    // A token that has already expired: the connect is answered with 109 and the SDK
    // fetches a new one.
    await sleep(ACCESS_TTL_SECONDS * 1000 + 1500);
    const issuedBefore = alice.tokensIssued;
    const { client } = await connected(t, alice, { token: alice.accessToken });
    assert.ok(alice.tokensIssued > issuedBefore, 'the expired token was replaced');
    // The connection outlives several token lifetimes by refreshing.
    const afterConnect = alice.tokensIssued;
    await sleep(ACCESS_TTL_SECONDS * 1000 * 2 + 500);
    assert.equal(client.state, 'connected');
    assert.ok(alice.tokensIssued >= afterConnect + 2, `refreshed ${alice.tokensIssued - afterConnect} times`);
    const { sub } = await subscribed(client, 'chat:sdk-refresh');
    await sub.publish({ text: 'still here' });
  });

  test('refuses a connect with an invalid token for good', async () => {
    const alice = await herald.user('alice');
    const client = herald.client(alice, { token: `${alice.accessToken}x`, getToken: null });
    const disconnected = once(client, 'disconnected');
    client.connect();
    const ctx = await disconnected;
    assert.equal(ctx.code, 3500);
    await sleep(300);
    assert.equal(client.state, 'disconnected');
  });

  test("refuses another user's notifications channel with 103", async (t) => {
    const alice = await herald.user('alice');
    const bob = await herald.user('bob');
    const { client } = await connected(t, alice);
    const sub = client.newSubscription(`notifications#${bob.id}`);
    const unsubscribed = once(sub, 'unsubscribed');
    sub.subscribe();
    const ctx = await unsubscribed;
    assert.equal(ctx.code, 103);
  });

  test("signing out closes the user's connections", async (t) => {
    const alice = await herald.user('alice');
    const bob = await herald.user('bob');
    const { client: first } = await connected(t, alice);
    const { client: second } = await connected(t, alice);
    const { client: other } = await connected(t, bob);
    const firstClosed = once(first, 'disconnected');
    const secondClosed = once(second, 'disconnected');
    await herald.logout(alice);
    assert.equal((await firstClosed).code, 3500);
    assert.equal((await secondClosed).code, 3500);
    await sleep(200);
    assert.equal(other.state, 'connected');
  });
});
