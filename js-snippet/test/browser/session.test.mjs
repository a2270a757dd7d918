// The visitor's session: kept in first-party storage, sent on every page view, shown from the
// cache before the service answers, and its lease renewed while the page is visible.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, spell, delay, US_POOL } from './harness.mjs';

let h;
before(async () => {
  h = await startHarness();
});
after(async () => {
  if (h) await h.stop();
});

/** Holds every dni request of the page until release() is called. */
async function holdApi(page) {
  let release;
  const gate = new Promise((r) => (release = r));
  const held = [];
  await page.route('**/v1/dni/session', async (route) => {
    held.push(route);
    await gate;
    await route.continue();
  });
  return { held, release };
}

const storeKey = () => `switchboard_${h.keys.us}`;
const stored = (page, area) => page.evaluate(([k, a]) => JSON.parse(window[a].getItem(k)), [storeKey(), area]);

test('returning visit: the cached number is shown before the service answers, then confirmed', async () => {
  const v = await h.open('plain.html', { key: 'us' });
  const n = await v.number();
  await v.until(() => v.answers.length === 1, 'the first answer');
  const first = v.answers[0];
  const rec = await stored(v.page, 'localStorage');
  assert.equal(rec.s, first.session);
  assert.equal(rec.n, n);
  assert.deepEqual(rec.r, ['+14155550100']);
  assert.ok(rec.e > Date.now() + 1700_000 && rec.e <= Date.now() + 1800_000, 'expiry = now + expires_in');

  const gate = await holdApi(v.page);
  await v.page.reload({ waitUntil: 'commit' });
  // The DOM shows the tracking number while the service's answer is still held back.
  await v.page.waitForFunction((want) => document.getElementById('phone').textContent === want, spell('Call (###) ###-####', n), { timeout: 5000 });
  assert.equal(await v.page.getAttribute('#tel', 'href'), spell('tel:+1##########', n));
  assert.equal(gate.held.length, 1, 'the page view was sent');
  assert.equal(v.answers.length, 1, 'and is not answered yet');
  assert.equal(v.requests[1].body.session, first.session, 'it names the stored session');

  gate.release();
  await v.until(() => v.answers.length === 2, 'the second answer');
  assert.equal(v.answers[1].session, first.session);
  assert.equal(v.answers[1].number, n, 'same visitor, same number');
  assert.equal(await v.text('#phone'), spell('Call (###) ###-####', n));
  assert.deepEqual(v.errors, []);
  await v.close();
});

test('returning visit: content parsed after the script ran is swapped too, before the answer', async () => {
  const v = await h.open('late.html', { key: 'us' });
  const n = await v.number();
  await v.until(() => v.answers.length === 1, 'the first answer');
  const gate = await holdApi(v.page);
  // The rest of the page arrives 800 ms after its head: the snippet runs in between.
  await v.page.goto(h.url('late.html', { key: 'us', pause: 800 }), { waitUntil: 'commit' });
  await v.page.waitForSelector('#late', { timeout: 5000 });
  await v.page.waitForFunction((want) => document.getElementById('late').innerHTML.startsWith(want), spell('Questions? <b>###</b>-###-####', n), { timeout: 5000 });
  assert.equal(await v.page.getAttribute('#late-tel', 'href'), spell('tel:###.###.####', n));
  assert.equal(await v.page.evaluate(() => window.snippetRanBeforeLate), true, 'the snippet had run before that content was parsed');
  assert.equal(v.answers.length, 1, 'all before the service answered');
  gate.release();
  await v.until(() => v.answers.length === 2, 'the second answer');
  await v.close();
});

test('a damaged storage record is ignored: the page view is still sent and answered', async () => {
  const v = await h.open('plain.html', { key: 'us' }, {
    setup: (page) => page.addInitScript((k) => localStorage.setItem(k, '{"s":42,"n":7,"r":"x","e":9e15}'), storeKey()),
  });
  const n = await v.number();
  assert.equal(v.requests[0].body.session, null);
  assert.equal(await v.text('#phone'), spell('Call (###) ###-####', n));
  assert.equal((await stored(v.page, 'localStorage')).n, n);
  assert.deepEqual(v.errors, []);
  await v.close();
});

test('returning visit: a stale cached number is corrected by the answer', async () => {
  const v = await h.open('plain.html', { key: 'us' });
  const n = await v.number();
  // Pretend the cache holds another pool number (e.g. the lease moved on meanwhile).
  const other = US_POOL.find((x) => x !== n);
  await v.page.evaluate(([k, o]) => {
    const rec = JSON.parse(localStorage.getItem(k));
    rec.n = o;
    localStorage.setItem(k, JSON.stringify(rec));
  }, [storeKey(), other]);
  const gate = await holdApi(v.page);
  await v.page.reload({ waitUntil: 'commit' });
  await v.page.waitForFunction((want) => document.getElementById('phone').textContent === want, spell('Call (###) ###-####', other), { timeout: 5000 });
  gate.release();
  // The service still holds n for this session: the page moves from the cached number to it.
  await v.page.waitForFunction((want) => document.getElementById('phone').textContent === want, spell('Call (###) ###-####', n));
  assert.equal(await v.page.getAttribute('#tel', 'href'), spell('tel:+1##########', n));
  assert.equal((await stored(v.page, 'localStorage')).n, n);
  await v.close();
});

test('returning visit: an expired cached number is not shown; the default stays until the answer', async () => {
  const v = await h.open('plain.html', { key: 'us' });
  const n = await v.number();
  await v.page.evaluate((k) => {
    const rec = JSON.parse(localStorage.getItem(k));
    rec.e = Date.now() - 1000;
    localStorage.setItem(k, JSON.stringify(rec));
  }, storeKey());
  const gate = await holdApi(v.page);
  await v.page.reload({ waitUntil: 'load' });
  await delay(200);
  assert.equal(await v.text('#phone'), 'Call (415) 555-0100');
  assert.equal(await v.page.evaluate(() => window.switchboard.number), null);
  assert.equal(v.requests[1].body.session, v.answers[0].session, 'the session id is still sent');
  gate.release();
  await v.page.waitForFunction((want) => document.getElementById('phone').textContent === want, spell('Call (###) ###-####', n));
  await v.close();
});

test('data-storage="session": sessionStorage only, no localStorage, no cookie', async () => {
  const v = await h.open('plain.html', { key: 'us', attrs: 'storage:session' });
  const n = await v.number();
  await v.until(() => v.answers.length === 1, 'the answer');
  const rec = await stored(v.page, 'sessionStorage');
  assert.equal(rec.n, n);
  assert.equal(rec.s, v.answers[0].session);
  assert.equal(await v.page.evaluate(() => localStorage.length), 0);
  assert.equal(await v.page.evaluate(() => document.cookie), '');
  assert.deepEqual(await v.context.cookies(), []);
  // A reload in the same tab is the same session.
  await v.page.reload();
  await v.until(() => v.answers.length === 2, 'the second answer');
  assert.equal(v.requests[1].body.session, v.answers[0].session);
  await v.close();
});

test('default storage: localStorage, and a first-party cookie where localStorage is refused', async () => {
  const v = await h.open('plain.html', { key: 'us' });
  await v.number();
  assert.equal((await stored(v.page, 'localStorage')).s, v.answers[0].session);
  assert.deepEqual(await v.context.cookies(), []);
  await v.close();

  // A browser that refuses localStorage (privacy settings throw SecurityError).
  const w = await h.open('plain.html', { key: 'us' }, {
    setup: (page) => page.addInitScript(() => {
      Object.defineProperty(window, 'localStorage', {
        get() {
          throw new DOMException('denied', 'SecurityError');
        },
      });
    }),
  });
  const n = await w.number();
  await w.until(() => w.answers.length === 1, 'the answer');
  const cookies = await w.context.cookies();
  assert.equal(cookies.length, 1);
  assert.equal(cookies[0].name, storeKey());
  assert.equal(cookies[0].path, '/');
  assert.equal(cookies[0].sameSite, 'Lax');
  assert.equal(JSON.parse(decodeURIComponent(cookies[0].value)).s, w.answers[0].session);
  await w.page.reload();
  await w.until(() => w.answers.length === 2, 'the second answer');
  assert.equal(w.requests[1].body.session, w.answers[0].session);
  assert.equal(w.answers[1].number, n);
  assert.deepEqual(w.errors, []);
  await w.close();
});

test('the _ga cookie\'s client id goes with the page views, also when GA sets it after the first', async () => {
  const v = await h.open('plain.html', { key: 'us' }, {
    setup: (page) => page.context().addCookies([{ name: '_ga', value: 'GA1.1.1234567890.1700000000', url: h.site }]),
  });
  await v.number();
  await v.until(() => v.answers.length === 1, 'the answer');
  assert.equal(v.requests[0].body.ga_client_id, '1234567890.1700000000');
  await v.close();

  const w = await h.open('plain.html', { key: 'us' });
  await w.number();
  await w.until(() => w.answers.length === 1, 'the answer');
  assert.ok(!('ga_client_id' in w.requests[0].body), 'no cookie, no client id');
  // GA's own script sets the cookie later; the next page view (a route change) carries it.
  await w.page.evaluate(() => {
    document.cookie = '_ga_X1Y2Z3=GS1.1.1700000000.1.0.1700000000.0.0.0; path=/';
    document.cookie = '_ga=GA1.2.42.1700000001; path=/';
    history.pushState({}, '', '/next');
  });
  await w.until(() => w.answers.length === 2, 'the second answer');
  assert.equal(w.requests[1].body.ga_client_id, '42.1700000001');
  assert.equal(w.requests[1].body.session, w.answers[0].session);
  assert.deepEqual(w.errors, []);
  await w.close();
});

test('the lease is renewed at half of expires_in while visible, and when the page is shown again', async () => {
  const v = await h.open('plain.html', { key: 'us' }, { setup: (page) => page.clock.install() });
  const n = await v.number();
  await v.until(() => v.answers.length === 1, 'the first answer');
  const { session, expires_in: ttl } = v.answers[0];
  assert.equal(ttl, 1800);

  // Shown again right away: the lease is fresh, nothing to renew.
  await v.page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await delay(200);
  assert.equal(v.requests.length, 1);

  // Half the lease later, the timer renews it.
  await v.page.clock.runFor((ttl / 2) * 1000 + 1000);
  await v.until(() => v.answers.length === 2, 'the renewal');
  assert.equal(v.requests[1].body.session, session);
  assert.equal(v.requests[0].body.renew, undefined, 'the page view is one');
  assert.equal(v.requests[1].body.renew, true, 'a renewal says so: the service counts no page view');
  assert.equal(v.answers[1].number, n);

  // Hidden: the timer does not renew...
  await v.page.evaluate(() => Object.defineProperty(document, 'hidden', { value: true, configurable: true }));
  await v.page.clock.runFor((ttl / 2) * 1000 + 1000);
  await delay(300);
  assert.equal(v.requests.length, 2);
  // ...until the page is shown again.
  await v.page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { value: false, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await v.until(() => v.answers.length === 3, 'the renewal on visibilitychange');
  assert.equal(v.requests[2].body.session, session);
  assert.equal(v.requests[2].body.renew, true);
  assert.equal(v.answers[2].number, n);
  assert.deepEqual(v.errors, []);
  await v.close();
});

test('a renewal answered with expires_in 0 (the renewal hold reached) keeps the number shown and stops renewing', async () => {
  const v = await h.open('plain.html', { key: 'us' }, { setup: (page) => page.clock.install() });
  const n = await v.number();
  await v.until(() => v.answers.length === 1, 'the first answer');
  const ttl = v.answers[0].expires_in;
  // The service's answer once renewals alone may no longer extend the lease: the same number,
  // no promise (`expires_in: 0`).
  await v.page.route('**/v1/dni/session', async (route) => {
    if (!JSON.parse(route.request().postData() || '{}').renew) return route.continue();
    const res = await route.fetch();
    const body = await res.json();
    await route.fulfill({ response: res, json: { ...body, expires_in: 0 } });
  });
  await v.page.clock.runFor((ttl / 2) * 1000 + 1000);
  await v.until(() => v.answers.length === 2, 'the renewal');
  assert.equal(v.requests[1].body.renew, true);
  assert.equal(v.answers[1].expires_in, 0);
  assert.equal(await v.number(), n, 'no flicker: the page keeps its number');

  // No more renewals: neither from the timer nor when the page is shown again.
  await v.page.clock.runFor(ttl * 1000 * 2);
  await v.page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await delay(300);
  assert.equal(v.requests.length, 2);
  assert.equal(await v.number(), n);
  assert.deepEqual(v.errors, []);
  await v.close();
});
