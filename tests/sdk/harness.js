// Starts the real herald-auth and herald-gateway binaries (target/debug) on free ports
// against real Redis (a random key prefix) and a fresh Postgres database, and offers the
// helpers the SDK tests need: register a user, sign in, sign out, publish as the server.
//
// Environment: HERALD_TEST_REDIS_URL (default redis://127.0.0.1:6379),
// HERALD_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/herald; the suite
// creates and drops its own database next to it), HERALD_BIN_DIR (default target/debug).

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
const binDir = process.env.HERALD_BIN_DIR ?? path.resolve(here, '../../target/debug');
const redisUrl = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const databaseUrl = process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/herald';

// The SDK and the WebSocket implementation it runs on in Node, for suites outside tests/sdk.
export { Centrifuge, WebSocket };

/** Access tokens live this long in the suite, so refreshes happen during the tests. */
export const ACCESS_TTL_SECONDS = 3;

/** A port nothing listens on right now (the OS's choice). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

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

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check()` is truthy (polling), or fails after `timeoutMs`. */
export async function eventually(what, check, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Resolves with the first `event` emitted by `emitter` that satisfies `filter`. */
export function once(emitter, event, filter = () => true, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.removeListener(event, listener);
      reject(new Error(`timed out waiting for ${event}`));
    }, timeoutMs);
    const listener = (ctx) => {
      if (!filter(ctx)) return;
      clearTimeout(timer);
      emitter.removeListener(event, listener);
      resolve(ctx);
    };
    emitter.on(event, listener);
  });
}

function start(binary, args, env, name) {
  const child = spawn(path.join(binDir, binary), args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (code && code !== 0) process.stderr.write(`${name} exited with ${code} ${signal ?? ''}\n${stderr}\n`);
  });
  return child;
}

async function waitReady(base, name) {
  await eventually(`${name} ready`, async () => {
    try {
      const response = await fetch(`${base}/readyz`);
      return response.ok;
    } catch {
      return false;
    }
  }, 60000);
}

/** The running services of one suite. */
export class Herald {
  /** Starts auth and a gateway; `gatewayEnv` adds settings of the gateway (`HERALD_*`). */
  static async start({ gatewayEnv = {} } = {}) {
    const herald = new Herald();
    await herald.#start(gatewayEnv);
    return herald;
  }

  #children = [];

  async #start(extraGatewayEnv) {
    this.prefix = `sdk:${randomBytes(6).toString('hex')}:`;
    this.database = `herald_sdk_${randomBytes(6).toString('hex')}`;
    psql(`CREATE DATABASE ${this.database}`);
    const common = {
      HERALD_REDIS_URL: redisUrl,
      HERALD_REDIS_PREFIX: this.prefix,
      HERALD_JWT__LEEWAY: '0',
    };
    const authEnv = {
      ...common,
      HERALD_DATABASE_URL: withDatabase(databaseUrl, this.database),
      HERALD_JWT__ACCESS_TTL: String(ACCESS_TTL_SECONDS),
      HERALD_RATE_LIMIT__TOKEN_PER_IP_PER_MINUTE: '100000',
      HERALD_RATE_LIMIT__TOKEN_PER_USERNAME_PER_MINUTE: '100000',
    };
    execFileSync(path.join(binDir, 'herald-auth'), ['migrate'], {
      env: { ...process.env, RUST_LOG: 'warn', ...authEnv },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const authPort = await freePort();
    const gatewayPort = await freePort();
    this.auth = `http://127.0.0.1:${authPort}`;
    this.gateway = `http://127.0.0.1:${gatewayPort}`;
    this.websocket = `ws://127.0.0.1:${gatewayPort}/connection/websocket`;
    // A short drain window: stopping the suite's gateway closes its clients within a second.
    this.gatewayEnv = { ...common, HERALD_WEB_DIR: '/nonexistent', HERALD_DRAIN_WINDOW: '1', ...extraGatewayEnv };
    this.#children.push(start('herald-auth', [], { ...authEnv, HERALD_LISTEN: `127.0.0.1:${authPort}` }, 'herald-auth'));
    this.#children.push(
      start('herald-gateway', [], { ...this.gatewayEnv, HERALD_LISTEN: `127.0.0.1:${gatewayPort}` }, 'herald-gateway'),
    );
    await Promise.all([waitReady(this.auth, 'herald-auth'), waitReady(this.gateway, 'herald-gateway')]);
  }

  async stop() {
    for (const child of this.#children) child.kill('SIGTERM');
    await Promise.all(this.#children.map((child) => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 5000);
      child.on('exit', () => { clearTimeout(timer); resolve(); });
    })));
    try {
      psql(`DROP DATABASE IF EXISTS ${this.database}`);
    } catch {
      // Left behind; harmless.
    }
  }

  async #post(url, body, headers = {}) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`POST ${url}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** Registers a new user (unique name with `base` in it) and signs in. */
  async user(base) {
    const username = `${base}_${randomBytes(3).toString('hex')}`;
    const password = `pw-${randomBytes(8).toString('hex')}`;
    const account = await this.#post(`${this.auth}/auth/register`, { username, password });
    const session = await this.#post(`${this.auth}/auth/token`, { username, password });
    return {
      id: account.id,
      username,
      password,
      accessToken: session.access_token,
      refreshToken: session.refresh_token,
      tokensIssued: 1,
    };
  }

  /** A fresh access token for `user` (what an app's getToken does). */
  async token(user) {
    const session = await this.#post(`${this.auth}/auth/token`, { username: user.username, password: user.password });
    user.tokensIssued += 1;
    return session.access_token;
  }

  /** Signs `user` out. */
  async logout(user) {
    const token = await this.token(user);
    await this.#post(`${this.auth}/auth/logout`, { refresh_token: user.refreshToken }, { authorization: `Bearer ${token}` });
  }

  /** Publishes `data` to `channel` as the server (the gateway binary's `publish` command). */
  publish(channel, data) {
    const out = execFileSync(path.join(binDir, 'herald-gateway'), ['publish', channel, JSON.stringify(data)], {
      env: { ...process.env, RUST_LOG: 'warn', ...this.gatewayEnv },
    });
    return JSON.parse(out.toString());
  }

  /** Publishes `data` to `channel` through the server API (`/api/publish`); the gateway must
   * have been started with `HERALD_API_KEY`. */
  async apiPublish(channel, data) {
    const answer = await this.#post(`${this.gateway}/api/publish`, { channel, data }, {
      'x-api-key': this.gatewayEnv.HERALD_API_KEY,
    });
    if (answer.error) throw new Error(`/api/publish ${channel}: ${JSON.stringify(answer.error)}`);
    return answer.result;
  }

  /** An SDK client of `user`, fetching tokens from auth when it needs one. */
  client(user, options = {}) {
    const client = new Centrifuge(this.websocket, {
      websocket: WebSocket,
      getToken: async () => this.token(user),
      minReconnectDelay: 100,
      maxReconnectDelay: 500,
      ...options,
    });
    client.on('error', () => {});
    return client;
  }
}
