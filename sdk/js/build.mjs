#!/usr/bin/env node
// Builds a JavaScript handler into a Sluice component:
//
//   node sdk/js/build.mjs path/to/handler.js [-o handler.wasm]     (or scripts/build-js)
//
// The module must export `handle(batch)` (see src/index.d.ts), which may be `async`. Steps:
// generate an entry module that imports the host's outbox and WASI environment and exports
// `handle` through the SDK's glue; bundle it with the handler into one file (componentize-js
// loads a single module); componentize it with jco against Sluice's `handler` world 0.4.0
// (../../wit/sluice.wit, with the WASI 0.2.12 and wasi:keyvalue packages of ../../wit/deps) plus
// `wasi:cli/environment`, which componentize-js does not import on its own. Its `http` feature
// stays on: the global `fetch` is StarlingMonkey's, over the world's `wasi:http/outgoing-handler`.
// Its `fetch-event` feature is disabled: it would export `wasi:http/incoming-handler`, and a
// handler is called through `handle`, never as an HTTP server.

import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// The current world: its entry module imports `sluice:queue/outbox@0.4.0` and `wasi:keyvalue`.
const wit = resolve(here, '../../wit');
// The versions package-lock.json pins; jco 1.35.0 fails with "failed to get path metadata".
const JCO = /^1\.34\./;
// The WASI version of wit/deps, which the world imports; componentize-js's runtime imports 0.2.x.
const WASI = '0.2.12';

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

const args = process.argv.slice(2);
let source;
let out;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-o' || args[i] === '--output') {
    out = args[++i];
    if (!out) fail('-o needs a file name');
  } else if (!source) source = args[i];
  else fail(`unexpected argument ${args[i]}; usage: build.mjs HANDLER.js [-o OUT.wasm]`);
}
if (!source) fail('usage: build.mjs HANDLER.js [-o OUT.wasm]');
source = resolve(source);
try {
  statSync(source);
} catch {
  fail(`${source}: no such file`);
}
out = resolve(out ?? join(dirname(source), `${basename(source).replace(/\.[cm]?js$/, '')}.wasm`));

// The toolchain installed beside this script by `npm install` (jco's package.json is not exported).
const jcoPackage = join(here, 'node_modules/@bytecodealliance/jco/package.json');
let jcoManifest;
try {
  jcoManifest = JSON.parse(readFileSync(jcoPackage, 'utf8'));
} catch {
  fail(`the JavaScript toolchain is not installed; run: npm install --prefix ${here}`);
}
if (!JCO.test(jcoManifest.version)) fail(`jco 1.34.x is needed, found ${jcoManifest.version}; run: npm install --prefix ${here}`);

const work = mkdtempSync(join(tmpdir(), 'sluice-build-js-'));
try {
  const entry = join(work, 'entry.js');
  writeFileSync(
    entry,
    [
      "import { publish, reply, send } from 'sluice:queue/outbox@0.4.0';",
      "import * as kvStore from 'wasi:keyvalue/store@0.2.0-draft2';",
      "import * as kvAtomics from 'wasi:keyvalue/atomics@0.2.0-draft2';",
      `import { getEnvironment } from 'wasi:cli/environment@${WASI}';`,
      `import { dispatch, installEnvironment, installKv, installOutbox } from ${JSON.stringify(join(here, 'src/component.js'))};`,
      `import { handle as handler } from ${JSON.stringify(source)};`,
      'installOutbox({ send, publish, reply });',
      'installEnvironment(getEnvironment);',
      'installKv(kvStore, kvAtomics);',
      'export function handle(batch) {',
      '  return dispatch(handler, batch);',
      '}',
      '',
    ].join('\n'),
  );

  const { rolldown } = await import('rolldown');
  const bundle = await rolldown({
    input: entry,
    platform: 'neutral',
    external: [/^sluice:/, /^wasi:/],
    // The handler's `sluice-sdk` is this SDK, wherever (or whether) it is installed beside it.
    resolve: {
      alias: {
        'sluice-sdk': join(here, 'src/index.js'),
      },
    },
    logLevel: 'warn',
  });
  const bundled = join(work, 'bundle.js');
  await bundle.write({ file: bundled, format: 'esm' });
  await bundle.close();

  // The world to build against: Sluice's `handler` and the WASI environment, each WIT package
  // in deps/ (WIT tools read the `*.wit` files of a directory, so sluice.wit gets its own).
  const world = join(work, 'wit');
  if (!readFileSync(join(wit, 'deps/cli.wit'), 'utf8').includes(`package wasi:cli@${WASI};`)) {
    fail(`${wit}/deps is not WASI ${WASI}; update WASI in ${fileURLToPath(import.meta.url)}`);
  }
  // `dereference`: were deps/ a symlink (as a frozen world's is), a copy of the link would let
  // the line below write into the repository's wit/deps.
  cpSync(join(wit, 'deps'), join(world, 'deps'), { recursive: true, dereference: true });
  cpSync(join(wit, 'sluice.wit'), join(world, 'deps/sluice-queue/sluice.wit'));
  writeFileSync(
    join(world, 'world.wit'),
    `package sluice:build-js;\n\nworld handler {\n  include sluice:queue/handler@0.4.0;\n  import wasi:cli/environment@${WASI};\n}\n`,
  );

  const jco = join(dirname(jcoPackage), jcoManifest.bin.jco);
  execFileSync(
    process.execPath,
    [jco, 'componentize', bundled, '--wit', world, '--world-name', 'handler', '--disable', 'fetch-event', '-o', out],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  console.log(`built ${out} (${Math.round(statSync(out).size / 1024)} KiB)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
