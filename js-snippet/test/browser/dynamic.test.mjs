// Content that appears after the first swap (widgets, AJAX, client-side routes) and single-page
// app navigation reported to the service as page views.
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

// Counts the DOM writes made from now on, seen by an observer of the page's own.
const watchWrites = (page) =>
  page.evaluate(() => {
    window.__writes = [];
    new MutationObserver((rs) => rs.forEach((r) => window.__writes.push(r.type + ':' + (r.target.id || r.target.nodeName)))).observe(
      document.documentElement,
      { childList: true, subtree: true, characterData: true, attributes: true },
    );
  });
const writes = (page) => page.evaluate(() => window.__writes.splice(0));

test('content added after load is swapped as it appears, and only once', async () => {
  const v = await h.open('plain.html', { key: 'us' });
  const n = await v.number();
  await watchWrites(v.page);

  // An AJAX-style insert of a block with a number and a link.
  await v.page.evaluate(() => {
    document.getElementById('more').innerHTML =
      '<div id="w"><p id="a1">Call 415.555.0100</p><a id="a2" href="callto:+14155550100">Skype</a></div>';
  });
  await v.page.waitForFunction((want) => document.getElementById('a1').textContent === want, spell('Call ###.###.####', n));
  assert.equal(await v.page.getAttribute('#a2', 'href'), spell('callto:+1##########', n));
  // Our insert, then exactly one text write and one href write by the snippet; nothing after.
  await delay(200);
  assert.deepEqual((await writes(v.page)).sort(), ['attributes:a2', 'characterData:#text', 'childList:more'].sort());

  // A text node's content changes (a framework updating text in place).
  await v.page.evaluate(() => (document.getElementById('a1').firstChild.data = 'Now 415 555 0100'));
  await v.page.waitForFunction((want) => document.getElementById('a1').textContent === want, spell('Now ### ### ####', n));

  // A link's href changes.
  await v.page.evaluate(() => document.getElementById('tel').setAttribute('href', 'tel:415-555-0100'));
  await v.page.waitForFunction((want) => document.getElementById('tel').getAttribute('href') === want, spell('tel:###-###-####', n));

  // A number completed over two separate inserts, across an inline element.
  await v.page.evaluate(() => (document.getElementById('more').innerHTML = '<p id="s">Call <b>415</b></p>'));
  await delay(50);
  assert.equal(await v.page.innerHTML('#s'), 'Call <b>415</b>');
  await v.page.evaluate(() => document.getElementById('s').append('-555-0100'));
  await v.page.waitForFunction((want) => document.getElementById('s').innerHTML === want, spell('Call <b>###</b>-###-####', n));

  // Text straight under <body> (scanned alone, not with the whole page).
  await v.page.evaluate(() => document.body.append('Or call 415 555 0100'));
  await v.page.waitForFunction((want) => document.body.lastChild.data === want, spell('Or call ### ### ####', n));

  // Nothing keeps rewriting: the page settles.
  await delay(100);
  await writes(v.page);
  await delay(300);
  assert.deepEqual(await writes(v.page), []);
  assert.deepEqual(v.errors, []);
  assert.equal(v.requests.length, 1, 'DOM changes are not page views');
  await v.close();
});

test('switchboard.swap() re-scans the page on demand', async () => {
  const v = await h.open('plain.html', { key: 'us' });
  const n = await v.number();
  // swap() is synchronous: the text is swapped when it returns, before the observer's turn.
  const out = await v.page.evaluate(() => {
    const p = document.getElementById('phone');
    p.textContent = '(415) 555-0100';
    window.switchboard.swap(); // synchronous: no need to wait for the observer
    return p.textContent;
  });
  assert.equal(out, spell('(###) ###-####', n));
  await v.close();
});

test('an SPA route change (pushState) reports a page view; the session keeps its number', async () => {
  const v = await h.open('spa.html', { key: 'us' });
  const n = await v.number();
  assert.equal(await v.text('#home'), spell('Home: call (###) ###-####', n));
  assert.equal(v.requests.length, 1);
  await v.until(() => v.answers.length === 1, 'the first answer');
  const session = v.answers[0].session;
  assert.ok(session, 'the service opened a session');

  await v.page.evaluate(() => window.go('contact'));
  await v.until(() => v.answers.length === 2, 'the page view answer');
  assert.equal(v.requests.length, 2);
  assert.equal(v.requests[1].body.session, session, 'the page view names the session');
  assert.match(v.requests[1].body.url, /[?&]route=contact$/, 'with the new URL');
  assert.equal(v.answers[1].session, session, 'the service kept the session');
  assert.equal(v.answers[1].number, n, 'and its number');
  // The new route's content is swapped as it renders.
  await v.page.waitForFunction((want) => document.getElementById('contact').innerHTML === want, spell('Sales: <b>###</b>.###.####', n));
  assert.equal(await v.page.getAttribute('#contact-tel', 'href'), spell('tel:+1##########', n));

  // replaceState to the same URL (routers do this to store state) is not a page view.
  await v.page.evaluate(() => history.replaceState({ route: 'contact', y: 1 }, '', location.href));
  await delay(300);
  assert.equal(v.requests.length, 2);

  // Back (popstate) is one.
  await v.page.evaluate(() => history.back());
  await v.until(() => v.answers.length === 3, 'the popstate page view answer');
  assert.doesNotMatch(v.requests[2].body.url, /route=/);
  assert.equal(v.requests[2].body.session, session);
  assert.equal(v.answers[2].number, n);
  await v.page.waitForFunction((want) => document.getElementById('home').textContent === want, spell('Home: call (###) ###-####', n));
  assert.equal(await v.text('#nav'), spell('Support: ###-###-####', n));
  assert.deepEqual(v.errors, []);
  await v.close();
});

test('a route change before the first answer waits for it, so no second session is opened', async () => {
  let release;
  const gate = new Promise((r) => (release = r));
  const v = await h.open('spa.html', { key: 'us' }, {
    setup: (page) => page.route('**/v1/dni/session', async (route) => {
      await gate;
      await route.continue();
    }),
  });
  await v.until(() => v.requests.length === 1, 'the first request');
  await v.page.evaluate(() => window.go('contact'));
  await delay(200);
  assert.equal(v.requests.length, 1, 'the page view waits for the answer in flight');
  release();
  await v.until(() => v.answers.length === 2, 'both answers');
  assert.ok(v.answers[0].session);
  assert.equal(v.requests[1].body.session, v.answers[0].session);
  assert.match(v.requests[1].body.url, /route=contact/);
  assert.equal(v.answers[1].number, v.answers[0].number);
  await v.close();
});
