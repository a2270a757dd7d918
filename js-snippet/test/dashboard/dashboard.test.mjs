// The dashboard in a real browser, against the real service: a scenario of visits and calls
// (the snippet's endpoint, and Twilio's webhooks signed as Twilio signs them), then sign in, pick
// the property and range, read the numbers, watch a call arrive live, try the XSS payloads the
// scenario planted, check the session cookie, and try another account's property by URL.
// Screenshots go to SCREENSHOT_DIR (default: <repo>/target/screenshots), never to git.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, json, startService } from '../browser/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SHOTS = process.env.SCREENSHOT_DIR || resolve(here, '..', '..', '..', 'target', 'screenshots');
const TOKEN = 'dashboard-test-twilio-token';
const SITE = 'https://www.acme.example';
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36';
const NUMBERS = Array.from({ length: 12 }, (_, i) => `+141555502${String(10 + i)}`);
const PAID = `${SITE}/drains?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=Cj0KCQ`;
// Planted by a visitor: they must come out as text, and never run.
const CAMPAIGN = `"'><script>window.__xss=1</script><img src=x onerror="window.__xss=2">`;
const XSS_PAGE = `${SITE}/'"><img src=x onerror=window.__xss=3>?utm_source=newsletter&utm_medium=email&utm_campaign=${encodeURIComponent(CAMPAIGN)}`;

let service, browser, A, B;

/** A page view as the snippet sends it, from the property's site. */
function visit(url, referrer) {
  const body = JSON.stringify({ key: A.publicKey, url, ...(referrer ? { referrer } : {}) });
  return new Promise((res, rej) => {
    const req = request(
      new URL('/v1/dni/session', service.base),
      {
        method: 'POST',
        headers: { 'content-type': 'text/plain', origin: SITE, 'user-agent': UA, 'content-length': Buffer.byteLength(body) },
      },
      (r) => {
        let text = '';
        r.on('data', (c) => (text += c));
        r.on('end', () => (r.statusCode === 200 ? res(JSON.parse(text)) : rej(new Error(`${r.statusCode} ${text}`))));
      },
    );
    req.on('error', rej);
    req.end(body);
  });
}

/** Posts a Twilio webhook, signed as Twilio signs it (HMAC-SHA1 of the URL and sorted params). */
async function twilio(path, params) {
  const url = service.base + path;
  const signed = url + Object.keys(params).sort().map((k) => k + params[k]).join('');
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': createHmac('sha1', TOKEN).update(signed, 'utf8').digest('base64'),
    },
    body: new URLSearchParams(params).toString(),
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
}

const ring = (sid, to) =>
  twilio('/v1/telephony/twilio/voice', {
    CallSid: sid, AccountSid: 'AC0123', From: '+14155559999', To: to,
    CallStatus: 'ringing', Direction: 'inbound', FromCity: 'OAKLAND', FromState: 'CA',
  });

/** The business answers, talks 85 s, and Twilio reports the recording and the end. */
async function answer(sid, to) {
  await twilio('/v1/telephony/twilio/status', { CallSid: sid, CallStatus: 'in-progress', To: to });
  await twilio(`/v1/telephony/twilio/dial?tn=${encodeURIComponent(to)}`, {
    CallSid: sid, DialCallStatus: 'completed', DialCallDuration: '85',
    RecordingUrl: `https://api.twilio.com/2010-04-01/Accounts/AC0123/Recordings/RE${sid}`, RecordingSid: `RE${sid}`,
  });
  await twilio('/v1/telephony/twilio/status', { CallSid: sid, CallStatus: 'completed', CallDuration: '90', To: to });
}

async function call(sid, to) {
  await ring(sid, to);
  await answer(sid, to);
}

const api = (method, path, body, key = A.key) => json(method, service.base + path, body, key);

async function account(name) {
  const { api_key: key } = JSON.parse(await service.cli('account', 'create', '--name', name, '--json'));
  return { key };
}

async function waitForCompleted(count) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { calls } = await api('GET', `/v1/properties/${A.property}/calls`);
    if (calls.length === count && calls.every((c) => c.qualified !== null)) return calls;
    if (Date.now() > deadline) throw new Error(`calls not completed: ${JSON.stringify(calls.map((c) => [c.provider_call_id, c.status, c.qualified]))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let calls;
const today = new Date().toISOString().slice(0, 10);
const daysAgo = (n) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);

before(async () => {
  service = await startService({
    properties: false,
    env: (base) => ({ TWILIO_AUTH_TOKEN: TOKEN, SWITCHBOARD_PUBLIC_URL: base }),
  });
  A = await account('Acme Co');
  B = await account('Rival Co');
  const property = (key, name) =>
    api('POST', '/v1/properties', {
      name, domains: ['acme.example'], default_number: '+14155550100', timezone: 'UTC', currency: 'USD',
    }, key);
  // A second property first, so that picking the property matters.
  await property(A.key, 'Empty Site');
  const acme = await property(A.key, 'Acme Plumbing');
  A.property = acme.id;
  A.publicKey = acme.public_key;
  await api('POST', `/v1/properties/${A.property}/pools`, { name: 'All', kind: 'session', lease_minutes: 30, numbers: NUMBERS });
  await api('POST', `/v1/properties/${A.property}/costs`, { rows: [{ date: today, source: 'google', medium: 'cpc', campaign: 'spring', amount: 30 }] });
  B.property = (await property(B.key, 'Rival Plumbing')).id;

  // 3 paid, 2 organic, 1 from the planted newsletter, 1 to a number nobody was shown.
  const shown = [];
  for (let i = 0; i < 3; i++) shown.push((await visit(PAID)).number);
  for (let i = 0; i < 2; i++) shown.push((await visit(`${SITE}/`, 'https://www.google.com/')).number);
  shown.push((await visit(XSS_PAGE)).number);
  shown.push(NUMBERS.find((n) => !shown.includes(n)));
  for (const [i, to] of shown.entries()) await call(`CAscenario${i}`, to);
  calls = await waitForCompleted(7);

  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (service) await service.stop();
});

/** A new browser context signed in as A, with page errors and console errors collected. */
async function signedIn(options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const errors = [];
  const dialogs = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  await page.goto(`${service.base}/dashboard`);
  await page.fill('#api_key', A.key);
  await page.click('form.signin button');
  await page.waitForSelector('#totals');
  return { context, page, errors, dialogs };
}

async function pick(page, from, to) {
  await page.selectOption('select[name=property]', A.property);
  await page.fill('input[name=from]', from);
  await page.fill('input[name=to]', to);
  await page.click('form.picker button');
  await page.waitForURL((u) => u.searchParams.get('property') === A.property && u.searchParams.get('to') === to);
}

const text = (page, selector) => page.locator(selector).first().evaluate((e) => e.textContent.trim());
const cell = (page, report, value, figure) =>
  page.locator(`table[data-report="${report}"] tr[data-value="${value}"] td[data-figure="${figure}"]`).evaluate((e) => e.textContent);

test('sign in, pick the property and range: totals, chart, tables, heat map, calls, benchmarks, pools', async () => {
  const { context, page, errors, dialogs } = await signedIn({ viewport: { width: 1280, height: 900 } });
  // The first property is shown first; the scenario's is picked.
  assert.match(await text(page, 'h1'), /^Empty Site/);
  await pick(page, daysAgo(6), today);
  assert.match(await text(page, 'h1'), /^Acme Plumbing/);

  assert.equal(await text(page, '.card[data-figure="calls"] .value'), '7');
  assert.equal(await text(page, '.card[data-figure="qualified"] .value'), '7');
  assert.equal(await text(page, '.card[data-figure="cost"] .value'), '30.00 USD');
  assert.equal(await text(page, '.card[data-figure="cost_per_call"] .value'), '4.29 USD');

  const want = { 'Paid Search': 3, 'Organic Search': 2, Email: 1, Unattributed: 1 };
  for (const [channel, n] of Object.entries(want)) {
    assert.equal(await cell(page, 'channel', channel, 'calls'), String(n), channel);
    const bars = await page.locator(`svg rect.bar[data-channel="${channel}"]`).evaluateAll((rs) => rs.map((r) => Number(r.dataset.calls)));
    assert.equal(bars.reduce((a, b) => a + b, 0), n, `${channel} in the chart`);
  }
  assert.equal(await cell(page, 'channel', 'Paid Search', 'cost'), '30.00 USD');
  assert.equal(await cell(page, 'channel', 'Paid Search', 'cost_per_call'), '10.00 USD');
  assert.equal(await cell(page, 'channel', 'Organic Search', 'cost_per_call'), '0.00 USD');
  assert.equal(await cell(page, 'campaign', 'spring', 'calls'), '3');

  // Calls by weekday and hour, as the calls API places them (the property's zone is UTC).
  const days = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
  const expected = {};
  for (const c of calls) {
    const t = new Date(c.started_at);
    const k = `${days[t.getUTCDay()]} ${String(t.getUTCHours()).padStart(2, '0')}`;
    expected[k] = (expected[k] || 0) + 1;
  }
  const heat = await page.locator('svg rect.cell').evaluateAll((rs) =>
    rs.filter((r) => r.dataset.calls !== '0').map((r) => [`${r.dataset.weekday} ${r.dataset.hour}`, Number(r.dataset.calls)]));
  assert.deepEqual(Object.fromEntries(heat), expected);

  // Recent calls, with attribution, confidence, cities and a player for the recording.
  assert.equal(await page.locator('#calls tbody tr').count(), 7);
  const paidRow = page.locator('#calls tr[data-key="twilio:CAscenario0"]');
  assert.equal(await paidRow.locator('td[data-col="channel"]').textContent(), 'Paid Search');
  assert.equal(await paidRow.locator('td[data-col="confidence"]').textContent(), 'exact');
  assert.equal(await paidRow.locator('td[data-col="campaign"]').textContent(), 'spring');
  assert.match(await paidRow.locator('td[data-col="caller"]').textContent(), /OAKLAND/);
  assert.equal(await paidRow.locator('td[data-col="status"]').textContent(), 'answered');
  assert.equal(
    await paidRow.locator('audio').getAttribute('src'),
    'https://api.twilio.com/2010-04-01/Accounts/AC0123/Recordings/RECAscenario0',
  );
  assert.equal(await text(page, '#calls tr[data-key="twilio:CAscenario6"] td[data-col="channel"]'), 'Unattributed');

  // The call-centre figures beside their benchmarks; the pool's health.
  assert.equal(await text(page, 'table[data-report="service"] tr[data-figure="service_level"] td.num'), '100.0%');
  assert.equal(await text(page, 'table[data-report="service"] tr[data-figure="service_level"] td.num:nth-of-type(2)'), '≥ 80.0%');
  assert.equal(await text(page, 'table[data-report="service"] tr[data-figure="service_level"] td.standing'), 'better');
  assert.equal(await text(page, 'table[data-report="pools"] tr[data-pool="All"] td[data-figure="numbers"]'), '12');
  assert.equal(await text(page, 'table[data-report="pools"] tr[data-pool="All"] td[data-figure="budget_refusals"]'), '0');

  await page.screenshot({ path: join(SHOTS, 'dashboard.png'), fullPage: true });
  assert.deepEqual(errors, []);
  assert.deepEqual(dialogs, []);
  await context.close();
});

test('XSS planted in a campaign name and a landing page URL is shown as text, and nothing runs', async () => {
  const { context, page, errors, dialogs } = await signedIn();
  await pick(page, today, today);
  const planted = calls.find((c) => c.attribution && c.attribution.channel === 'Email');
  assert.ok(planted, 'the newsletter call');
  assert.equal(planted.attribution.campaign, CAMPAIGN);
  const row = page.locator(`#calls tr[data-key="twilio:${planted.provider_call_id}"]`);
  assert.equal(await row.locator('td[data-col="campaign"]').textContent(), CAMPAIGN);
  // The landing page as the report groups it (host and path); the whole URL on hover.
  const landing = new URL(planted.attribution.landing_page);
  assert.equal(await row.locator('td[data-col="landing_page"]').textContent(), landing.hostname + landing.pathname);
  assert.equal(await row.locator('td[data-col="landing_page"]').getAttribute('title'), planted.attribution.landing_page);
  assert.equal(await page.locator('table[data-report="campaign"] tbody th').filter({ hasText: CAMPAIGN }).count(), 1);
  const pages = await page.locator('table[data-report="landing-page"] tbody th').allTextContents();
  assert.ok(pages.some((p) => p.includes("/'")), `the planted page is listed: ${pages}`);

  // Nothing of the payloads became markup, and nothing ran.
  assert.equal(await page.locator('img').count(), 0);
  assert.equal(await page.locator('script').count(), 1, 'only the live feed script');
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(dialogs, []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a call placed while the page is open appears live, rings, then completes with its attribution', async () => {
  const { context, page, errors } = await signedIn();
  await pick(page, today, today);
  await page.waitForSelector('#calls[data-live="open"]');
  const { number } = await visit(PAID);
  await ring('CAlive', number);
  const status = (sid) => `#calls tr[data-key="twilio:${sid}"] td[data-col="status"]`;
  await page.waitForFunction((s) => document.querySelector(s)?.textContent === 'ringing', status('CAlive'), { timeout: 10_000 });
  assert.equal(await page.locator('#calls tbody tr').first().getAttribute('data-key'), 'twilio:CAlive', 'on top');
  await answer('CAlive', number);
  const row = '#calls tr[data-key="twilio:CAlive"]';
  await page.waitForFunction(
    (r) => document.querySelector(`${r}`)?.getAttribute('data-state') === 'completed',
    row,
    { timeout: 15_000 },
  );
  assert.equal(await text(page, `${row} td[data-col="status"]`), 'answered');
  assert.equal(await text(page, `${row} td[data-col="channel"]`), 'Paid Search');
  assert.equal(await text(page, `${row} td[data-col="confidence"]`), 'exact');
  assert.equal(await text(page, `${row} td[data-col="campaign"]`), 'spring');
  assert.equal(await text(page, `${row} td[data-col="landing_page"]`), 'www.acme.example/drains');
  // The call's last callback may come after it was completed: its duration then follows.
  await page.waitForFunction((r) => document.querySelector(`${r} td[data-col="duration"]`)?.textContent === '90 s', row);
  assert.equal(await page.locator(`${row} audio`).count(), 1);
  await page.screenshot({ path: join(SHOTS, 'dashboard-live.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('on a phone the page fits the screen', async () => {
  const { context, page, errors } = await signedIn({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await pick(page, daysAgo(6), today);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await page.screenshot({ path: join(SHOTS, 'dashboard-phone.png'), fullPage: true });
  await page.locator('#recent').scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(SHOTS, 'dashboard-phone-calls.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('the session cookie is HttpOnly and SameSite, signing out ends it, and another account stays out', async () => {
  const { context, page } = await signedIn();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'sb_session');
  assert.ok(session, JSON.stringify(cookies));
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.ok(session.expires > Date.now() / 1000, 'it expires');
  assert.equal(await page.evaluate(() => document.cookie.includes('sb_session')), false, 'scripts cannot read it');

  // Another account's property, by URL: the page and its feed answer 404 and show nothing of it.
  const res = await page.goto(`${service.base}/dashboard?property=${B.property}`);
  assert.equal(res.status(), 404);
  assert.doesNotMatch(await page.content(), /Rival/);
  const feed = await page.request.get(`${service.base}/v1/properties/${B.property}/live`);
  assert.equal(feed.status(), 404);
  // A cookie never authorises a change, even from the dashboard's own origin.
  const write = await page.request.post(`${service.base}/v1/properties`, {
    data: { name: 'x', domains: ['x.example'], default_number: '+14155550100' },
  });
  assert.equal(write.status(), 401);

  await page.goto(`${service.base}/dashboard`);
  await page.click('form.signout button');
  await page.waitForSelector('#api_key');
  assert.equal((await context.cookies()).some((c) => c.name === 'sb_session'), false);
  // The session is gone on the server too: the old cookie opens nothing.
  const again = await browser.newContext();
  await again.addCookies([session]);
  const p = await again.newPage();
  await p.goto(`${service.base}/dashboard`);
  assert.equal(await p.locator('#api_key').count(), 1);
  await again.close();
  await context.close();
});
