// The shipped file: built from the sources, within budget, ES2017, self-contained, and inert in
// an environment where it cannot work (it must never throw into the page).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import * as acorn from 'acorn';
import { build, bundleSource, gzipSize, BUDGET } from '../../build.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = readFileSync(join(root, 'dist', 'dni.js'), 'utf8');

test('dist/dni.js is what the sources build to (run `npm run build` after editing src/)', async () => {
  assert.equal(dist, await build());
});

test('the build is deterministic', async () => {
  assert.equal(await build(), await build());
});

test(`dist/dni.js is at most ${BUDGET} bytes minified and gzipped`, () => {
  const size = gzipSize(dist);
  assert.ok(size <= BUDGET, `${size} bytes`);
});

test('sources and dist parse as ES2017 scripts (no ?., ??, or other newer syntax)', () => {
  for (const [name, code] of [['src/dni.js', readFileSync(join(root, 'src', 'dni.js'), 'utf8')], ['bundle', bundleSource()], ['dist', dist]]) {
    assert.doesNotThrow(() => acorn.parse(code, { ecmaVersion: 2017, sourceType: 'script' }), name);
  }
  assert.throws(() => acorn.parse('a?.b', { ecmaVersion: 2017 }), 'the check does catch newer syntax');
});

test('the bundle has format.js inside the IIFE, without its Node export', () => {
  const src = bundleSource();
  assert.ok(src.includes('function replaceAcross('));
  assert.ok(!src.includes('module.exports'));
  assert.ok(!/\bconsole\./.test(dist), 'no console output');
  assert.ok(/^!function\(/.test(dist), 'one IIFE');
});

/** Runs dist/dni.js in a bare context: a window with the given document and extras. */
function run(document, extra = {}) {
  const window = { document, ...extra };
  const context = vm.createContext(window);
  window.window = context;
  const before = Object.keys(context);
  vm.runInContext(dist, context);
  return { context, added: Object.keys(context).filter((k) => !before.includes(k)) };
}

const script = (attrs) => ({
  src: 'https://sb.example/dni.js',
  getAttribute: (n) => (n in attrs ? attrs[n] : null),
});

test('without document.currentScript it does nothing and defines nothing', () => {
  assert.deepEqual(run({ currentScript: null }).added, []);
});

test('it defines window.switchboard only, and consent() in a broken environment throws nothing', () => {
  // consent required: nothing runs at load. Then consent() meets a document with no DOM methods,
  // no storage, no history, no fetch: every step fails, none may throw.
  const { context, added } = run({ currentScript: script({ 'data-key': 'pk_x', 'data-consent': 'required' }) }, { URL });
  assert.deepEqual(added, ['switchboard']);
  const sb = context.switchboard;
  assert.deepEqual(Object.keys(sb).sort(), ['consent', 'number', 'session', 'swap']);
  assert.equal(sb.number, null);
  assert.equal(sb.session, null);
  assert.doesNotThrow(() => sb.consent());
  assert.doesNotThrow(() => sb.swap());
  assert.equal(sb.number, null);
});

test('a script tag without data-key leaves the defaults (no request)', () => {
  let requests = 0;
  const { context } = run({ currentScript: script({}) }, { URL, fetch: () => requests++, AbortController });
  assert.equal(requests, 0);
  assert.doesNotThrow(() => context.switchboard.consent());
  assert.equal(requests, 0);
});
