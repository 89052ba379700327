// The same client against `herald --redis-url ... --database-url postgres://...`: the one
// process on real Redis (a key prefix of its own) and a fresh Postgres database, which it
// migrates itself.
//
// Environment: HERALD_TEST_REDIS_URL (default redis://127.0.0.1:6379) and
// HERALD_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/herald; the test
// creates and drops a database of its own beside it, with psql).

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, startHerald } from './harness.mjs';
import { scenarios } from './scenarios.mjs';

const redisUrl = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const databaseUrl = process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/herald';

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

/** Deletes the keys this run left in Redis (best effort: needs redis-cli). */
function forgetRedisKeys(prefix) {
  try {
    const keys = execFileSync('redis-cli', ['-u', redisUrl, '--scan', '--pattern', `${prefix}*`]).toString().split('\n').filter(Boolean);
    for (let i = 0; i < keys.length; i += 500) execFileSync('redis-cli', ['-u', redisUrl, 'DEL', ...keys.slice(i, i + 500)], { stdio: 'ignore' });
  } catch {
    // left to expire
  }
}

describe('herald on Redis and Postgres in the browser', () => {
  const ctx = {};
  const suffix = randomBytes(4).toString('hex');
  const database = `herald_web_${suffix}`;
  before(async () => {
    psql(`CREATE DATABASE ${database}`);
    ctx.herald = await startHerald({
      HERALD_REDIS_URL: redisUrl,
      HERALD_REDIS_PREFIX: `herald-web-${suffix}:`,
      HERALD_DATABASE_URL: withDatabase(databaseUrl, database),
    });
    ctx.url = ctx.herald.url;
    ctx.browser = await launchBrowser();
  });
  after(async () => {
    await ctx.browser?.close();
    await ctx.herald?.stop();
    psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    forgetRedisKeys(`herald-web-${suffix}:`);
  });

  for (const key of ['chat', 'tasks', 'offline']) {
    test(scenarios[key].name, () => scenarios[key].run(ctx));
  }
});
