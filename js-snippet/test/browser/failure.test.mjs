// Never break the page: the service down, slow, or answering nonsense leaves the page's own
// numbers in place and throws nothing. And the visitor-facing switches: consent, webdriver.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, spell, delay } from './harness.mjs';

let h;
before(async () => {
  h = await startHarness();
});
after(async () => {
  if (h) await h.stop();
});

async function assertDefaults(v) {
  assert.equal(await v.text('#phone'), 'Call (415) 555-0100');
  assert.equal(await v.page.getAttribute('#tel', 'href'), 'tel:+14155550100');
  assert.equal(await v.page.evaluate(() => window.switchboard.number), null);
}

test('service down (connection refused): defaults stay, no page error', async () => {
  const v = await h.open('plain.html', { key: 'us', api: 'down' });
  await v.until(() => v.failed.length === 1, 'the failed request');
  assert.equal(v.failed[0].error, 'net::ERR_CONNECTION_REFUSED');
  await delay(300);
  await assertDefaults(v);
  assert.deepEqual(v.errors, []);
  // The browser's own network log line is all there is (no script can prevent it).
  assert.deepEqual(v.networkLog, ['Failed to load resource: net::ERR_CONNECTION_REFUSED']);
  // The page and the snippet still work: swap() is harmless, the page's scripts run.
  assert.equal(await v.page.evaluate(() => (window.switchboard.swap(), 1 + 1)), 2);
  await v.close();
});

test('service slow (no answer within 2 s): the request is abandoned at 2 s, defaults stay', async () => {
  const v = await h.open('plain.html', { key: 'us', api: 'slow' });
  await v.until(() => v.requests.length === 1, 'the request');
  await v.until(() => v.failed.length === 1, 'the abandoned request', 6000);
  const waited = v.failed[0].at - v.requests[0].at;
  assert.ok(waited >= 1800 && waited < 3500, `abandoned after ${waited} ms`);
  assert.equal(v.failed[0].error, 'net::ERR_ABORTED');
  await assertDefaults(v);
  assert.deepEqual(v.errors, []);
  assert.deepEqual(v.networkLog, []);
  await v.close();
});

test('without fetch/AbortController the XHR fallback is used, with the same 2 s timeout', async () => {
  const noFetch = (page) => page.addInitScript(() => {
    delete window.AbortController;
  });
  const v = await h.open('plain.html', { key: 'us' }, { setup: noFetch });
  const n = await v.number();
  assert.equal(await v.text('#phone'), spell('Call (###) ###-####', n));
  assert.match(v.requests[0].headers['content-type'], /^text\/plain/);
  assert.equal(await v.page.evaluate(() => performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/v1/dni/session'))[0].initiatorType), 'xmlhttprequest');
  await v.close();

  const s = await h.open('plain.html', { key: 'us', api: 'slow' }, { setup: noFetch });
  await s.until(() => s.failed.length === 1, 'the timed-out request', 6000);
  const waited = s.failed[0].at - s.requests[0].at;
  assert.ok(waited >= 1800 && waited < 3500, `abandoned after ${waited} ms`);
  await assertDefaults(s);
  assert.deepEqual(s.errors, []);
  await s.close();
});

for (const [what, params, log] of [
  ['a 500 answer', { api: 'error' }, ['Failed to load resource: the server responded with a status of 500 (Internal Server Error)']],
  ['a 200 answer that is not JSON', { api: 'garbage' }, []],
  ['a 403 (page not on the property\'s domains)', { key: 'other' }, null],
  ['a 404 (unknown key)', { key: 'pk_unknown' }, null],
]) {
  test(`${what}: defaults stay, no page error`, async () => {
    const v = await h.open('plain.html', { key: 'us', ...params });
    await v.until(() => v.requests.length === 1, 'the request');
    await delay(700);
    await assertDefaults(v);
    assert.deepEqual(v.errors, []);
    // The service's 403/404 carry no CORS headers: Chromium logs them as blocked by CORS.
    if (log) assert.deepEqual(v.networkLog, log);
    else {
      assert.equal(v.networkLog.length, 2, v.networkLog.join('\n'));
      assert.match(v.networkLog[0], /has been blocked by CORS policy: No 'Access-Control-Allow-Origin' header/);
      assert.equal(v.networkLog[1], 'Failed to load resource: net::ERR_FAILED');
    }
    assert.equal(await v.page.evaluate(() => localStorage.length), 0, 'nothing stored');
    await v.close();
  });
}

test('returning visitor with the service down: the cached number stays, no page error', async () => {
  const v = await h.open('plain.html', { key: 'us' });
  const n = await v.number();
  await v.page.route('**/v1/dni/session', (route) => route.abort('connectionrefused'));
  await v.page.reload();
  await v.until(() => v.failed.length === 1, 'the failed request');
  await delay(200);
  assert.equal(await v.text('#phone'), spell('Call (###) ###-####', n));
  assert.deepEqual(v.errors, []);
  await v.close();
});

test('data-consent="required": nothing happens until switchboard.consent()', async () => {
  const v = await h.open('plain.html', { key: 'us', attrs: 'consent:required' });
  await v.page.waitForFunction(() => window.switchboard);
  await delay(800);
  assert.equal(v.requests.length, 0, 'no request');
  await assertDefaults(v);
  assert.equal(await v.page.evaluate(() => localStorage.length + sessionStorage.length + document.cookie.length), 0, 'no storage');
  assert.deepEqual(await v.page.evaluate(() => window.dataLayer), []);

  await v.page.evaluate(() => window.switchboard.consent());
  const n = await v.number();
  assert.equal(v.requests.length, 1);
  assert.equal(await v.text('#phone'), spell('Call (###) ###-####', n));
  // Consent given twice is still one start.
  await v.page.evaluate(() => window.switchboard.consent());
  await delay(300);
  assert.equal(v.requests.length, 1);
  assert.deepEqual(v.errors, []);
  await v.close();
});

test('data-skip-webdriver="true" skips automated browsers; without it they are served', async () => {
  const v = await h.open('plain.html', { key: 'us', attrs: 'skip-webdriver:true' });
  assert.equal(await v.page.evaluate(() => navigator.webdriver), true, 'this browser is automated');
  await v.page.waitForFunction(() => window.switchboard);
  await delay(800);
  assert.equal(v.requests.length, 0);
  await v.page.evaluate(() => window.switchboard.consent()); // cannot start it either
  await delay(300);
  assert.equal(v.requests.length, 0);
  await assertDefaults(v);
  assert.deepEqual(v.errors, []);
  await v.close();

  const w = await h.open('plain.html', { key: 'us', attrs: 'skip-webdriver:false' });
  await w.number();
  assert.equal(w.requests.length, 1);
  await w.close();
});

test('loaded twice: one copy runs, one request', async () => {
  const v = await h.open('plain.html', { key: 'us' });
  await v.number();
  await v.page.evaluate(
    () =>
      new Promise((resolve) => {
        const s = document.createElement('script');
        s.src = '/dni.js';
        s.setAttribute('data-key', document.querySelector('script[data-key]').getAttribute('data-key'));
        s.setAttribute('data-api', document.querySelector('script[data-key]').getAttribute('data-api'));
        s.onload = resolve;
        document.head.append(s);
      }),
  );
  await delay(300);
  assert.equal(v.requests.length, 1);
  assert.deepEqual(v.errors, []);
  await v.close();
});
