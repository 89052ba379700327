// Builds the web client into dist/: app.js and app.css (bundled by esbuild) and an
// index.html that names them with a content hash, so a new build is never served stale.
//
//   node build.mjs          production build (minified, with source maps)
//   node build.mjs --watch  rebuild on every change (unminified)

import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
const watch = process.argv.includes('--watch');

async function writeIndex() {
  const digest = async (file) =>
    createHash('sha256')
      .update(await readFile(path.join(dist, file)))
      .digest('hex')
      .slice(0, 12);
  const template = await readFile(path.join(here, 'index.html'), 'utf8');
  const html = template
    .replace('app.css', `app.css?v=${await digest('app.css')}`)
    .replace('app.js', `app.js?v=${await digest('app.js')}`);
  await writeFile(path.join(dist, 'index.html'), html);
}

const options = {
  entryPoints: { app: path.join(here, 'src/main.ts') },
  outdir: dist,
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: !watch,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'info',
  plugins: [
    {
      name: 'index-html',
      setup(build) {
        build.onEnd(async (result) => {
          if (result.errors.length === 0) await writeIndex();
        });
      },
    },
  ],
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
