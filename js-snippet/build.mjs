// Builds dist/dni.js: src/format.js inlined into the src/dni.js IIFE, minified with terser.
//
//   node build.mjs          write dist/dni.js (refuses to if it is over the size budget)
//   node build.mjs --check  exit 1 if dist/dni.js is not what the sources build to, or is over budget
//
// dist/dni.js is committed: the Rust service embeds it with include_str!, so `cargo build` needs
// no Node. The output is deterministic for a given terser version (pinned in package-lock.json).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { minify } from 'terser';

const here = dirname(fileURLToPath(import.meta.url));
const DIST = join(here, 'dist', 'dni.js');
const MARKER = '/* @include format.js */';
export const BUDGET = 3072; // bytes, minified and gzipped

/** Source of the bundle before minification. */
export function bundleSource() {
  const dni = readFileSync(join(here, 'src', 'dni.js'), 'utf8');
  const format = readFileSync(join(here, 'src', 'format.js'), 'utf8');
  if (dni.split(MARKER).length !== 2) throw new Error(`src/dni.js must contain ${MARKER} exactly once`);
  // The Node export at the end of format.js is for the unit tests only.
  const inlined = format.replace(/^if \(typeof module !== 'undefined'.*$/m, '');
  if (inlined === format) throw new Error('src/format.js: the module.exports line was not found');
  return dni.replace(MARKER, () => inlined);
}

/** The minified bundle, exactly as dist/dni.js must hold it. */
export async function build() {
  const { code } = await minify(bundleSource(), {
    ecma: 2017,
    compress: { passes: 2 },
    mangle: true,
    format: { comments: false },
  });
  return code + '\n';
}

export function gzipSize(code) {
  // -9, as a server compressing static files ahead of time would.
  return gzipSync(code, { level: 9 }).length;
}

async function main() {
  const check = process.argv.includes('--check');
  const code = await build();
  const gz = gzipSize(code);
  console.log(`dist/dni.js: ${Buffer.byteLength(code)} bytes minified, ${gz} bytes gzipped (budget ${BUDGET})`);
  let failed = false;
  if (gz > BUDGET) {
    console.error(`error: the snippet is ${gz - BUDGET} bytes over its ${BUDGET}-byte gzipped budget`);
    failed = true;
  }
  if (check) {
    let current = null;
    try {
      current = readFileSync(DIST, 'utf8');
    } catch {}
    if (current !== code) {
      console.error('error: dist/dni.js is stale (or missing): run `npm run build` and commit the result');
      failed = true;
    } else {
      console.log('dist/dni.js is up to date');
    }
  } else if (!failed) {
    mkdirSync(dirname(DIST), { recursive: true });
    writeFileSync(DIST, code);
    console.log('wrote dist/dni.js');
  }
  if (failed) process.exit(1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
