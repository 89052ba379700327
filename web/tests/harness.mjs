// Browser-test harness: starts the real `herald` binary (one process: auth, tasks-api,
// notifier, gateway, web client) on a free port with a fresh SQLite file, and drives Debian's
// Chromium through playwright-core.
//
// Environment:
//   HERALD_BIN      the herald binary (default: target/debug/herald of this workspace)
//   CHROMIUM_PATH   the browser (default: /usr/bin/chromium)
//   HERALD_WEB_DIST the built client (default: web/dist)

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const workspace = path.resolve(here, '../..');
const heraldBin = process.env.HERALD_BIN ?? path.join(workspace, 'target/debug/herald');
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const webDist = process.env.HERALD_WEB_DIST ?? path.join(workspace, 'web/dist');

/** Access tokens live this long in the tests, so token refreshes happen during them. */
export const ACCESS_TTL_SECONDS = 20;

/**
 * Starts herald on 127.0.0.1 with any free port and a new SQLite file (or the files of `dir`,
 * left by an earlier run); resolves once it printed its address. `stop()` ends it (SIGTERM)
 * and removes its files, unless `stop({ keep: true })`.
 */
export async function startHerald(extraEnv = {}, { dir: reuse } = {}) {
  const dir = reuse ?? (await mkdtemp(path.join(os.tmpdir(), 'herald-web-')));
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('HERALD_')));
  Object.assign(env, {
    HERALD_LISTEN: '127.0.0.1:0',
    HERALD_DATABASE_URL: `sqlite://${path.join(dir, 'herald.db')}`,
    HERALD_WEB_DIR: webDist,
    HERALD_JWT__ACCESS_TTL: String(ACCESS_TTL_SECONDS),
    RUST_LOG: process.env.RUST_LOG ?? 'warn',
    ...extraEnv,
  });
  const child = spawn(heraldBin, [], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`herald did not start within 30 s:\n${output}`)), 30_000);
    const onData = (chunk) => {
      output += chunk;
      const match = /Herald is running at (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${heraldBin}: ${err.message} (build it with \`cargo build -p herald\`)`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`herald exited with ${code}:\n${output}`));
    });
  });
  child.stdout.on('data', (chunk) => {
    if (process.env.HERALD_TEST_LOG) process.stdout.write(chunk);
  });
  return {
    url,
    dir,
    async stop({ keep = false } = {}) {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      if (!keep) await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Launches Debian's Chromium headless. playwright-core gives every launch a new, empty
 * profile (user-data dir) of its own, removed when the browser closes.
 */
export function launchBrowser() {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
    ],
  });
}

let counter = 0;
/** A username no other test uses: `<prefix><random>`. */
export function uniqueName(prefix) {
  counter += 1;
  return `${prefix}${Date.now().toString(36).slice(-4)}${counter}${Math.random().toString(36).slice(2, 5)}`;
}

export const PASSWORD = 'correct horse battery';

/**
 * Opens herald in a new browser context as a new user (signing up through the form) and
 * waits until the app is live. Records dialogs (none may ever open) and page errors.
 */
export async function signUp(browser, url, username, { viewport } = {}) {
  const context = await browser.newContext({ viewport: viewport ?? { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.dialogs = [];
  page.errors = [];
  page.on('dialog', (dialog) => {
    page.dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  page.on('pageerror', (error) => page.errors.push(error.message));
  await page.goto(url);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByTestId('me').filter({ hasText: username }).waitFor();
  await waitConnected(page);
  return { context, page };
}

/** Waits until the connection indicator says the WebSocket is connected. */
export async function waitConnected(page) {
  await page.locator('[data-testid="connection"][data-state="connected"]').waitFor();
}

/** Goes to a view without reloading the page (`#/chat/<room>`, `#/tasks`, `#/notifications`). */
export async function go(page, hash) {
  await page.evaluate((h) => {
    location.hash = h;
  }, hash);
}

/** Sends a chat message in the open room. */
export async function say(page, text) {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
  await page.locator('.messages .message .text', { hasText: text }).first().waitFor();
}

/** The locator of one message by its exact text. */
export function message(page, text) {
  return page.locator('.messages .message').filter({ has: page.locator('.text').getByText(text, { exact: true }) });
}
