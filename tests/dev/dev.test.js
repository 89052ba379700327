// `make dev` end to end: deploy/dev.sh brings up auth, tasks-api, notifier and gateway as
// separate processes on free ports (a fresh Postgres database, a random Redis prefix), then a
// user creates a task assigned to another user, who is connected with the npm centrifuge SDK
// and receives both the `tasks` publication and the personal notification. SIGTERM to the
// script's process group must stop every process it started within a bounded time.
//
// Environment: HERALD_TEST_REDIS_URL (default redis://127.0.0.1:6379), HERALD_TEST_DATABASE_URL
// (default postgres://postgres@127.0.0.1:5432; the test creates and drops its own database),
// HERALD_DEV_ARGS (extra arguments of deploy/dev.sh, e.g. --release).
//
//   make test-dev     (builds the binaries first, so the script's own cargo build is a no-op)

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Centrifuge, WebSocket, eventually, freePort, once, sleep } from '../sdk/harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const redisUrl = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const databaseUrl = process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432';
const devArgs = (process.env.HERALD_DEV_ARGS ?? '').split(/\s+/).filter(Boolean);

/** Bounds: start-up (a no-op cargo build, migrations, four services) and shutdown. */
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 15_000;
const DRAIN_WINDOW_SECONDS = 1;

function withDatabase(url, name) {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

function psql(sql) {
  execFileSync('psql', [withDatabase(databaseUrl, 'postgres'), '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** True while any process of the group `pgid` is alive. */
function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    if (error.code === 'ESRCH') return false;
    throw error;
  }
}

const database = `herald_dev_${randomBytes(6).toString('hex')}`;
const prefix = `dev:${randomBytes(6).toString('hex')}:`;
let dev; // the deploy/dev.sh child, leader of its own process group
let log = ''; // the tail of its interleaved, prefixed output
let exited = null; // {code, signal} once the script has ended
let base = {}; // service name -> http://127.0.0.1:<port>
const clients = [];

function logTail() {
  return `\n--- deploy/dev.sh output (tail) ---\n${log}\n---`;
}

/** SIGTERM to the whole group; true when every process ended within the bound. */
async function stopGroup(timeoutMs) {
  if (!dev || !groupAlive(dev.pid)) return true;
  process.kill(-dev.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (groupAlive(dev.pid)) {
    if (Date.now() > deadline) {
      process.kill(-dev.pid, 'SIGKILL'); // nothing may outlive the test
      return false;
    }
    await sleep(100);
  }
  return true;
}

before(async () => {
  const ports = {
    gateway: await freePort(),
    'tasks-api': await freePort(),
    auth: await freePort(),
    notifier: await freePort(),
    proxy: await freePort(),
  };
  base = Object.fromEntries(Object.entries(ports).map(([name, port]) => [name, `http://127.0.0.1:${port}`]));
  dev = spawn(path.join(root, 'deploy/dev.sh'), ['--no-web', ...devArgs], {
    cwd: root,
    detached: true, // its own process group (and session), so one signal reaches everything
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      HERALD_DATABASE_URL: withDatabase(databaseUrl, database),
      HERALD_REDIS_URL: redisUrl,
      HERALD_REDIS_PREFIX: prefix,
      HERALD_DEV_GATEWAY_PORT: String(ports.gateway),
      HERALD_DEV_TASKS_API_PORT: String(ports['tasks-api']),
      HERALD_DEV_AUTH_PORT: String(ports.auth),
      HERALD_DEV_NOTIFIER_PORT: String(ports.notifier),
      HERALD_DEV_PROXY_PORT: String(ports.proxy),
      HERALD_DRAIN_WINDOW: String(DRAIN_WINDOW_SECONDS),
      HERALD_WEB_DIR: '/nonexistent',
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
    },
  });
  const keep = (chunk) => {
    log = (log + chunk).slice(-8000);
  };
  dev.stdout.on('data', keep);
  dev.stderr.on('data', keep);
  dev.on('exit', (code, signal) => {
    exited = { code, signal };
  });

  for (const name of ['auth', 'tasks-api', 'notifier', 'gateway']) {
    await eventually(`${name} /readyz`, async () => {
      if (exited) throw new Error(`deploy/dev.sh exited early (${JSON.stringify(exited)})${logTail()}`);
      try {
        return (await fetch(`${base[name]}/readyz`)).ok;
      } catch {
        return false;
      }
    }, READY_TIMEOUT_MS).catch((error) => {
      throw new Error(`${error.message}${error.message.includes('---') ? '' : logTail()}`);
    });
  }
});

after(async () => {
  for (const client of clients) client.disconnect();
  await stopGroup(STOP_TIMEOUT_MS);
  try {
    psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  } catch {
    // Left behind; harmless.
  }
  try {
    const keys = execFileSync('redis-cli', ['-u', redisUrl, '--scan', '--pattern', `${prefix}*`]).toString().split('\n').filter(Boolean);
    for (let i = 0; i < keys.length; i += 500) {
      execFileSync('redis-cli', ['-u', redisUrl, 'DEL', ...keys.slice(i, i + 500)], { stdio: 'ignore' });
    }
  } catch {
    // No redis-cli: the prefix's few keys stay behind.
  }
});

async function request(method, url, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method, headers, body: JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Registers `username` (the database is fresh, so plain names are free) and signs in. */
async function user(username) {
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const account = await request('POST', `${base.auth}/auth/register`, { username, password });
  assert.equal(account.username, username);
  const token = async () => (await request('POST', `${base.auth}/auth/token`, { username, password })).access_token;
  return { id: account.id, username, accessToken: await token(), token };
}

test('make dev: token, WebSocket subscribe, POST /tasks, notification received, clean stop', async (t) => {
  const alice = await user('alice');
  const bob = await user('bob');

  const client = new Centrifuge(`ws://${new URL(base.gateway).host}/connection/websocket`, {
    websocket: WebSocket,
    token: bob.accessToken,
    getToken: bob.token,
  });
  client.on('error', () => {});
  clients.push(client);
  const notificationsChannel = `notifications#${bob.id}`;
  const serverSubscribed = once(client, 'subscribed', (ctx) => ctx.channel === notificationsChannel);
  const connected = once(client, 'connected');
  client.connect();
  await connected;
  await serverSubscribed;

  const tasks = client.newSubscription('tasks');
  const subscribed = once(tasks, 'subscribed');
  tasks.subscribe();
  await subscribed;

  const title = `Ship the release ${randomBytes(3).toString('hex')}`;
  const created = once(tasks, 'publication', (ctx) => ctx.data?.task?.title === title, 15000);
  const assigned = once(client, 'publication', (ctx) => ctx.channel === notificationsChannel, 15000);
  const task = await request('POST', `${base['tasks-api']}/tasks`, { title, assignee: bob.id }, alice.accessToken);
  assert.equal(task.assignee, bob.id);
  assert.equal(task.created_by, alice.id);

  const publication = await created;
  assert.equal(publication.data.type, 'task.created');
  assert.equal(publication.data.text, `New task created: ${title}`);
  assert.equal(publication.data.task.id, task.id);

  const notification = await assigned;
  assert.equal(notification.data.type, 'task.assigned');
  assert.equal(notification.data.text, `alice assigned you "${title}"`);
  assert.equal(notification.data.task.id, task.id);
  assert.equal(notification.data.actor.id, alice.id);

  // Ctrl-C semantics: one SIGTERM to the group stops the script and everything it started.
  client.disconnect();
  const started = Date.now();
  const stopped = await stopGroup(STOP_TIMEOUT_MS);
  assert.ok(stopped, `processes were still alive ${STOP_TIMEOUT_MS} ms after SIGTERM (killed)${logTail()}`);
  await eventually('the exit status of deploy/dev.sh', () => exited !== null, 2000);
  assert.ok(
    exited.code === 143 || exited.signal === 'SIGTERM',
    `deploy/dev.sh ended with ${JSON.stringify(exited)}${logTail()}`,
  );
  t.diagnostic(`every process stopped ${Date.now() - started} ms after SIGTERM`);
});
