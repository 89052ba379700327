// Anonymous readers through the npm centrifuge SDK: a gateway with
// HERALD_CHANNELS__PUBLIC__ANONYMOUS=true lets a client without a token follow a `public:`
// feed that the server publishes to through /api/publish.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Centrifuge, Herald, WebSocket, once } from './harness.js';

const API_KEY = 'sdk-anonymous-key';

let herald;

before(async () => {
  herald = await Herald.start({
    gatewayEnv: { HERALD_CHANNELS__PUBLIC__ANONYMOUS: 'true', HERALD_API_KEY: API_KEY },
  });
});

after(async () => {
  await herald?.stop();
});

/** An SDK client without a token (no `token`, no `getToken`). */
function anonymous(t) {
  const client = new Centrifuge(herald.websocket, { websocket: WebSocket, minReconnectDelay: 100, maxReconnectDelay: 500 });
  client.on('error', () => {});
  t.after(() => client.disconnect());
  return client;
}

describe('anonymous readers of public feeds', () => {
  test('a client without a token follows a public feed published through the server API', async (t) => {
    const client = anonymous(t);
    const connected = once(client, 'connected');
    client.connect();
    const ctx = await connected;
    assert.ok(ctx.client);

    const sub = client.newSubscription('public:sdk-scores');
    const subscribed = once(sub, 'subscribed');
    sub.subscribe();
    await subscribed;

    const received = once(sub, 'publication');
    await herald.apiPublish('public:sdk-scores', { home: 1, away: 0 });
    const publication = await received;
    assert.deepEqual(publication.data, { home: 1, away: 0 });

    const history = await sub.history({ limit: 10 });
    assert.equal(history.publications.length, 1);
    assert.deepEqual(history.publications[0].data, { home: 1, away: 0 });
  });

  test('a client without a token cannot publish nor see presence', async (t) => {
    const client = anonymous(t);
    client.connect();
    const sub = client.newSubscription('public:sdk-readonly');
    const subscribed = once(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
    await assert.rejects(sub.publish({ home: 9 }), (err) => err.code === 103);
    await assert.rejects(sub.presence(), (err) => err.code === 103);
  });
});
