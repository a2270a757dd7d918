// What the snippet writes: every spelling, links, numbers split over elements, ignored regions,
// the dataLayer event. Each page is a new visitor (fresh browser context) of the real service.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, spell, US_POOL, UK_POOL } from './harness.mjs';

let h;
before(async () => {
  h = await startHarness();
});
after(async () => {
  if (h) await h.stop();
});

test('US: every spelling is swapped in its own format, and links too', async () => {
  const v = await h.open('us.html', { key: 'us' });
  const n = await v.number();
  assert.ok(US_POOL.includes(n), `${n} is a pool number`);
  const expected = {
    s1: 'Call (###) ###-#### today',
    s2: 'Call ###-###-#### today',
    s3: 'Call ###.###.#### today',
    s4: 'Call ### ### #### today',
    s5: 'Call ########## today',
    s6: 'Call +1 ### ### #### today',
    s7: 'Call 1-###-###-#### today',
    s8: 'Call +1########## today',
  };
  for (const [id, template] of Object.entries(expected)) {
    assert.equal(await v.text(`#${id}`), spell(template, n), id);
  }
  const hrefs = await v.page.$$eval('#links a', (as) => as.map((a) => a.getAttribute('href')));
  assert.deepEqual(hrefs, [
    spell('tel:+1##########', n),
    spell('tel:###-###-####', n),
    spell('callto:+1##########', n),
    spell('TEL:+1%20###%20###%20####', n),
    'https://example.com/4155550100', // not a phone link
    'tel:+14155550101', // another number
  ]);
  // The answer came from the real service, cross-origin, as a CORS simple request.
  assert.equal(v.requests.length, 1);
  assert.match(v.requests[0].headers['content-type'], /^text\/plain/);
  assert.equal(v.requests[0].body.key, h.keys.us);
  assert.equal(v.requests[0].body.url, h.url('us.html', { key: 'us' }));
  assert.equal(v.answers[0].number, n);
  assert.deepEqual(v.errors, []);
  await v.close();
});

test('UK: every spelling is swapped in its own format, and links too', async () => {
  const v = await h.open('uk.html', { key: 'uk' });
  const n = await v.number();
  assert.ok(UK_POOL.includes(n), `${n} is a UK pool number`);
  assert.equal(await v.text('#u1'), spell('Ring 0## #### #### now', n));
  assert.equal(await v.text('#u2'), spell('Ring +44 ## #### #### now', n));
  assert.equal(await v.text('#u3'), spell('Ring +44 (0)## #### #### now', n));
  assert.equal(await v.page.getAttribute('#l1', 'href'), spell('tel:+44##########', n));
  assert.equal(await v.page.getAttribute('#l2', 'href'), spell('callto:+44%20##%20####%20####', n));
  assert.equal(
    await v.page.innerHTML('#split'),
    spell('Ring <strong>0##</strong> #### <span>####</span>', n),
  );
  assert.deepEqual(v.errors, []);
  await v.close();
});

test('a number split over inline elements is swapped, each digit in its own element', async () => {
  const v = await h.open('us.html', { key: 'us' });
  const n = await v.number();
  assert.equal(await v.page.innerHTML('#split'), spell('Call <b>###</b>-###-<i>####</i> now', n));
  assert.equal(await v.page.innerHTML('#split2a'), spell('<span>(###)</span> <span>###</span>-<span>####</span>', n));
  assert.equal(await v.page.getAttribute('#split2a', 'href'), spell('tel:+1##########', n));
  // Text in different blocks, or across a line break, is not one number.
  assert.equal(await v.page.innerHTML('#blocks'), '<p>415</p><p>555-0100</p>');
  assert.equal(await v.page.innerHTML('#br'), '415<br>555-0100');
  // Other numbers, and the number glued into an order id, stay.
  assert.equal(await v.text('#other'), 'Fax 415-555-0101, order 99-415-555-0100');
  await v.close();
});

test('ignored regions are left untouched: input, textarea, contenteditable, data-switchboard-ignore, script, style, select', async () => {
  const v = await h.open('ignored.html', { key: 'us' });
  const n = await v.number();
  assert.equal(await v.text('#control'), spell('Call ###-###-####', n), 'the control is swapped');
  const state = await v.page.evaluate(() => ({
    input: document.getElementById('input').value,
    inputAttr: document.getElementById('input').getAttribute('value'),
    textarea: document.getElementById('textarea').value,
    textareaText: document.getElementById('textarea').textContent,
    editable: document.getElementById('editable').innerHTML,
    ignored: document.getElementById('ignored').innerHTML,
    select: document.getElementById('select').value,
    script: document.getElementById('script').textContent,
    css: document.getElementById('css').textContent,
  }));
  assert.deepEqual(state, {
    input: '415-555-0100',
    inputAttr: '415-555-0100',
    textarea: '415-555-0100',
    textareaText: '415-555-0100',
    editable: 'Call <b>415-555-0100</b>',
    ignored: 'Call 415-555-0100 <a id="ignored-link" href="tel:+14155550100"><span>415-555-0100</span></a>',
    select: '415-555-0100',
    script: 'var sitePhone = "415-555-0100";',
    css: '.x::after { content: "415-555-0100"; }',
  });
  // Content added later inside an ignored region stays untouched too; next to it, it is swapped.
  await v.page.evaluate(() => {
    document.getElementById('ignored').insertAdjacentHTML('beforeend', '<p id="ig2">415-555-0100</p>');
    document.getElementById('editable').insertAdjacentHTML('beforeend', '<p id="ed2">415-555-0100</p>');
    document.getElementById('later').innerHTML = '<p id="ok2">415-555-0100</p>';
  });
  await v.page.waitForFunction((want) => document.getElementById('ok2').textContent === want, spell('###-###-####', n));
  assert.equal(await v.text('#ig2'), '415-555-0100');
  assert.equal(await v.text('#ed2'), '415-555-0100');
  // Typing a number into the editor is not rewritten either.
  await v.page.click('#editable');
  await v.page.keyboard.type(' or 415-555-0100');
  await v.page.evaluate(() => new Promise((r) => setTimeout(r, 50)));
  assert.match(await v.text('#editable'), /or\s415-555-0100/);
  assert.deepEqual(v.errors, []);
  await v.close();
});

test('window.dataLayer receives the switchboard_number event', async () => {
  const v = await h.open('us.html', { key: 'us', utm_source: 'google', utm_medium: 'cpc' });
  const n = await v.number();
  const events = await v.page.evaluate(() => window.dataLayer.filter((e) => e.event === 'switchboard_number'));
  assert.deepEqual(events, [{ event: 'switchboard_number', number: n, channel: 'Paid Search' }]);
  assert.equal(v.answers[0].channel, 'Paid Search');
  await v.close();
});

test('the snippet defines no global but window.switchboard', async () => {
  const ctx = await h.browser.newContext();
  const page = await ctx.newPage();
  // The same page without the snippet, then with it: compare the window's own properties.
  await page.goto(h.url('us.html', { key: 'us', api: 'real' }));
  await page.waitForFunction(() => window.switchboard && window.switchboard.number);
  const withSnippet = await page.evaluate(() => Object.getOwnPropertyNames(window));
  await page.route('**/dni.js', (r) => r.fulfill({ status: 200, contentType: 'text/javascript', body: '' }));
  await page.reload();
  const without = await page.evaluate(() => Object.getOwnPropertyNames(window));
  assert.deepEqual(withSnippet.filter((k) => !without.includes(k)), ['switchboard']);
  await ctx.close();
});
