// The Google Analytics client id the shipped snippet sends: read from the _ga cookie
// (GA1.<n>.<random>.<seconds> -> <random>.<seconds>), and guarded like every other DOM access.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const dist = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'dni.js'), 'utf8');

/** Runs dist/dni.js on a page whose document.cookie reads `cookie()`; returns the page view's body. */
function pageView(cookie) {
  const bodies = [];
  const document = {
    currentScript: { src: 'https://sb.example/dni.js', getAttribute: (n) => (n === 'data-key' ? 'pk_x' : null) },
    referrer: '',
    addEventListener() {},
    get cookie() {
      return cookie();
    },
  };
  const window = vm.createContext({
    document,
    location: { href: 'https://acme.example/' },
    history: { pushState() {}, replaceState() {} },
    addEventListener() {},
    URL,
    AbortController,
    setTimeout: () => 0,
    clearTimeout() {},
    fetch: (url, init) => {
      bodies.push(JSON.parse(init.body));
      return new Promise(() => {});
    },
  });
  window.window = window;
  vm.runInContext(dist, window);
  assert.equal(bodies.length, 1, 'one page view is sent');
  return bodies[0];
}

test('the client id is the last two parts of the _ga cookie', () => {
  for (const [cookie, id] of [
    ['_ga=GA1.1.1234567890.1700000000', '1234567890.1700000000'],
    ['a=1; _ga=GA1.2.987654321.1600000000; _ga_ABC123=GS1.1.1700000000.1.0.1700000000.0.0.0', '987654321.1600000000'],
    ['_ga_ABC123=GS1.1.1700000000.1.0.1700000000.0.0.0; _ga=GA1.1.5.6', '5.6'],
  ]) {
    assert.equal(pageView(() => cookie).ga_client_id, id, cookie);
  }
});

test('without a _ga cookie of that form, the page view carries no client id', () => {
  for (const cookie of ['', 'a=1', '_ga_ABC123=GS1.1.1700000000.1.0', 'x_ga=GA1.1.1.2', '_ga=', '_ga=GA1.1.abc.def', '_ga=1234.5678']) {
    const body = pageView(() => cookie);
    assert.ok(!('ga_client_id' in body), `${cookie}: ${JSON.stringify(body)}`);
    assert.equal(body.key, 'pk_x');
  }
});

test('a document whose cookie cannot be read still sends the page view', () => {
  const body = pageView(() => {
    throw new Error('SecurityError: cookies are disabled in this sandbox');
  });
  assert.equal(body.key, 'pk_x');
  assert.ok(!('ga_client_id' in body));
});
