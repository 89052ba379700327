// The client's source never turns strings into markup: no HTML sinks anywhere in src/.
// (The browser tests check the outcome; this keeps new code from adding a sink at all.)

import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');
const SINKS = /\b(innerHTML|outerHTML|insertAdjacentHTML|createContextualFragment|document\.write|srcdoc|eval\s*\(|new Function\s*\()/;

test('no HTML sinks in the client source', async () => {
  const files = (await readdir(src)).filter((name) => name.endsWith('.ts'));
  assert.ok(files.length > 0);
  for (const name of files) {
    const lines = (await readFile(path.join(src, name), 'utf8')).split('\n');
    lines.forEach((line, index) => {
      const code = line.replace(/\/\/.*$/, '');
      assert.doesNotMatch(code, SINKS, `${name}:${index + 1}: ${line.trim()}`);
    });
  }
});
