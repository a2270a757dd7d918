// Browser-test harness: the real Switchboard service, a fixture web server on another origin (so
// the snippet's API calls are cross-origin and CORS is exercised for real), and Debian's chromium
// driven by playwright-core.
//
//   const h = await startHarness();     // in before()
//   const v = await h.open('us.html', { key: 'us' });
//   ...
//   await h.stop();                     // in after()
//
// Fixture pages hold placeholders that the fixture server fills per request from the query:
//   {{SNIPPET}} the snippet: the real service's /dni.js (SNIPPET_SOURCE=local: this site's copy of dist/)
//   {{KEY}}    ?key=us|uk|other (a property created here) or any other value, used as is
//   {{API}}    ?api=real (default) | down (connection refused) | slow (never answers)
//              | garbage (200, not JSON) | error (500 with a JSON error)
//   {{ATTRS}}  ?attrs=consent:required,storage:session -> data-consent="required" data-storage="session"
// and ?pause=ms sends the part of a fixture after <!-- PAUSE --> that much later.
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..', '..');
const FIXTURES = join(here, 'fixtures');
const DIST = join(ROOT, 'dist', 'dni.js');

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];

export const US_DEFAULT = '+14155550100';
export const UK_DEFAULT = '+442079460958';
export const US_POOL = Array.from({ length: 20 }, (_, i) => `+141555501${11 + i}`);
export const UK_POOL = Array.from({ length: 20 }, (_, i) => `+4420794600${String(i + 1).padStart(2, '0')}`);

export const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (closed again, so connecting to it is refused until reused). */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export async function json(method, url, body, apiKey) {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
    body: body && JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/**
 * Starts the service with a fresh database. By default with an account and the US, UK and "other"
 * properties; `{ properties: false }` leaves the database empty, `env(base)` adds variables.
 * `cli(...args)` runs the same binary on the same database and answers its stdout.
 */
export async function startService({ properties = true, env: extraEnv = () => ({}) } = {}) {
  const bin = resolve(process.env.SWITCHBOARD_BIN || join(ROOT, '..', 'target', 'debug', 'switchboard'));
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-snippet-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // A clean environment: nothing from the developer's shell (a DATABASE_URL, REDIS_URL...) leaks in.
  const env = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    HOME: process.env.HOME || dir,
    SWITCHBOARD_BIND: `127.0.0.1:${port}`,
    DATABASE_URL: `sqlite://${dir}/sb.db`,
    SWITCHBOARD_NEW_SESSIONS_PER_IP_PER_MINUTE: '100000',
    ...extraEnv(base),
  };
  let log = '';
  const proc = spawn(bin, [], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (b) => (log += b));
  proc.stderr.on('data', (b) => (log += b));
  let exited = null;
  proc.on('exit', (code, signal) => (exited = { code, signal }));
  // Should the test process die without running its after() hooks, take the service along.
  const reap = () => proc.kill('SIGKILL');
  process.once('exit', reap);
  proc.on('error', (e) => (exited = { error: e.message }));

  const stop = async () => {
    process.removeListener('exit', reap);
    if (!exited) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await new Promise((r) => (exited ? r() : proc.once('exit', r)));
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited) throw new Error(`switchboard exited early (${JSON.stringify(exited)}):\n${log}`);
      try {
        const res = await fetch(`${base}/health/ping`);
        if (res.ok) break;
      } catch {}
      if (Date.now() > deadline) throw new Error(`switchboard did not answer /health/ping within 60 s:\n${log}`);
      await delay(100);
    }
    const cli = async (...args) => (await promisify(execFile)(bin, args, { env, cwd: dir })).stdout;
    if (!properties) return { base, stop, log: () => log, cli };
    const apiKey = JSON.parse(await cli('account', 'create', '--name', 'T', '--json')).api_key;

    const property = async (defaultNumber, domains, pool) => {
      const p = await json('POST', `${base}/v1/properties`, { name: 'T', domains, default_number: defaultNumber }, apiKey);
      if (pool) await json('POST', `${base}/v1/properties/${p.id}/pools`, { name: 'All', kind: 'session', numbers: pool }, apiKey);
      return p.public_key;
    };
    const keys = {
      us: await property(US_DEFAULT, ['127.0.0.1', 'localhost'], US_POOL),
      uk: await property(UK_DEFAULT, ['127.0.0.1', 'localhost'], UK_POOL),
      // Not this site's domain: the service answers 403 (without CORS headers).
      other: await property(US_DEFAULT, ['example.com'], ['+14155550199']),
    };
    return { base, keys, stop, log: () => log, cli };
  } catch (e) {
    await stop();
    throw e;
  }
}

const escapeAttr = (s) => String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/**
 * Where pages load the snippet from: the real service's GET /dni.js (the file it embeds, which
 * .ci/run checks is the current build), or with SNIPPET_SOURCE=local, this site's /dni.js read
 * fresh from dist/ (to iterate on the snippet without rebuilding the service).
 */
function snippetSrc(service) {
  return process.env.SNIPPET_SOURCE === 'local' ? '/dni.js' : `${service.base}/dni.js`;
}

/** The fixture site: fixtures, /dni.js (fresh from dist/ on every request) and fake APIs. */
async function startSite(service) {
  const downPort = await freePort();
  const held = new Set(); // requests to the "slow" API, never answered
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const send = (status, type, body, headers = {}) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
      res.end(body);
    };
    try {
      if (url.pathname === '/dni.js') return send(200, 'text/javascript', readFileSync(DIST));
      // Chromium asks for it, and logs a 404 as a console error, which the tests collect.
      if (url.pathname === '/favicon.ico') return send(204, 'image/x-icon', '');
      const fake = /^\/fake\/(\w+)\/v1\/dni\/session$/.exec(url.pathname);
      if (fake) {
        const cors = { 'access-control-allow-origin': req.headers.origin || '*' };
        if (fake[1] === 'slow') return void held.add(res);
        if (fake[1] === 'garbage') return send(200, 'application/json', '<html>not json', cors);
        return send(500, 'application/json', '{"error":{"code":"internal","message":"boom"}}', cors);
      }
      const name = url.pathname.replace(/^\//, '') || 'index.html';
      if (!/^[\w-]+\.html$/.test(name)) return send(404, 'text/plain', 'not found');
      const q = url.searchParams;
      const key = q.get('key') || 'us';
      const apiName = q.get('api') || 'real';
      const api = {
        real: service.base,
        down: `http://127.0.0.1:${downPort}`,
      }[apiName] || `http://127.0.0.1:${server.address().port}/fake/${apiName}`;
      const attrs = (q.get('attrs') || '')
        .split(',')
        .filter(Boolean)
        .map((kv) => {
          const [k, v] = kv.split(':');
          if (!/^[a-z-]+$/.test(k)) throw new Error(`bad attribute ${k}`);
          return `data-${k}="${escapeAttr(v)}"`;
        })
        .join(' ');
      const html = readFileSync(join(FIXTURES, name), 'utf8')
        .replaceAll('{{SNIPPET}}', escapeAttr(snippetSrc(service)))
        .replaceAll('{{KEY}}', escapeAttr(service.keys[key] || key))
        .replaceAll('{{API}}', escapeAttr(api))
        .replaceAll('{{ATTRS}}', attrs);
      // ?pause=ms: the part after <!-- PAUSE --> is sent that much later (content parsed late).
      const pause = Number(q.get('pause') || 0);
      if (pause && html.includes('<!-- PAUSE -->')) {
        const [head, tail] = html.split('<!-- PAUSE -->');
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.write(head.padEnd(head.length + 2048)); // past any sniffing buffer: parsed now
        const t = setTimeout(() => res.end(tail), pause);
        res.on('close', () => clearTimeout(t));
        return;
      }
      return send(200, 'text/html; charset=utf-8', html);
    } catch (e) {
      if (e.code === 'ENOENT') return send(404, 'text/plain', 'not found');
      return send(500, 'text/plain', String(e));
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    stop: () =>
      new Promise((r) => {
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close(r);
      }),
  };
}

/**
 * A page visit with everything a test wants to look at:
 * requests (dni session POSTs: { url, body }), answers (their JSON bodies), errors (page errors
 * and console errors), and the page and its browser context.
 */
class Visit {
  constructor(context, page) {
    this.context = context;
    this.page = page;
    this.requests = [];
    this.answers = [];
    this.errors = []; // page errors and console errors: must stay empty
    this.failed = []; // dni requests that failed: { url, error, at }
    const isDni = (r) => r.url().endsWith('/v1/dni/session') && r.method() === 'POST';
    page.on('pageerror', (e) => this.errors.push(`pageerror: ${e.message}`));
    // Chromium logs a failed request (refused, 4xx/5xx, CORS-blocked) to the console itself, as an
    // error from the network, not from a script: no script can prevent it. Those lines are kept
    // apart, in networkLog; everything else at error level (and any page error) is in errors.
    this.networkLog = [];
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      if (/^(Failed to load resource: |Access to fetch at '[^']*' from origin '[^']*' has been blocked by CORS policy)/.test(m.text())) {
        this.networkLog.push(m.text());
      } else this.errors.push(`console.error: ${m.text()}`);
    });
    page.on('request', (r) => {
      if (isDni(r)) this.requests.push({ url: r.url(), body: JSON.parse(r.postData() || 'null'), at: Date.now(), headers: r.headers() });
    });
    page.on('requestfailed', (r) => {
      if (isDni(r)) this.failed.push({ url: r.url(), error: r.failure() && r.failure().errorText, at: Date.now() });
    });
    page.on('response', async (r) => {
      if (!isDni(r.request())) return;
      try {
        this.answers.push(await r.json());
      } catch {}
    });
  }

  /** Waits until the snippet has applied a number from the service (or a cached one). */
  async number(timeout = 10_000) {
    await this.page.waitForFunction(() => window.switchboard && window.switchboard.number, null, { timeout });
    return this.page.evaluate(() => window.switchboard.number);
  }

  /** Waits until fn(this) is truthy, polling. */
  async until(fn, what, timeout = 10_000) {
    const deadline = Date.now() + timeout;
    while (!(await fn(this))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await delay(25);
    }
  }

  text(selector) {
    return this.page.locator(selector).evaluate((e) => e.textContent);
  }

  close() {
    return this.context.close();
  }
}

export async function startHarness() {
  const service = await startService();
  let site, browser;
  try {
    site = await startSite(service);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  } catch (e) {
    if (site) await site.stop();
    await service.stop();
    throw e;
  }
  return {
    api: service.base,
    site: site.base,
    keys: service.keys,
    browser,
    serviceLog: service.log,
    url(name, params = {}) {
      const q = new URLSearchParams(params).toString();
      return `${site.base}/${name}${q ? `?${q}` : ''}`;
    },
    /** A fresh browser context (fresh storage: a new visitor). setup(page) runs before goto. */
    async open(name, params = {}, { setup, context } = {}) {
      const ctx = context || (await browser.newContext());
      const page = await ctx.newPage();
      const visit = new Visit(ctx, page);
      if (setup) await setup(page, visit);
      await page.goto(this.url(name, params));
      return visit;
    },
    async stop() {
      await browser.close().catch(() => {});
      await site.stop();
      await service.stop();
    },
  };
}

/**
 * Spells an E.164 number like a template: each # takes the next digit of the national number
 * (NANP: 10 digits; UK: the significant number without the trunk 0). Independent of src/format.js
 * on purpose: the tests must not compute their expectations with the code under test.
 */
export function spell(template, e164) {
  const national = e164.startsWith('+1') ? e164.slice(2) : e164.startsWith('+44') ? e164.slice(3) : null;
  if (!national) throw new Error(`spell: unsupported ${e164}`);
  let i = 0;
  const out = template.replace(/#/g, () => national[i++]);
  if (i !== national.length) throw new Error(`spell: ${template} has ${i} slots for ${national}`);
  return out;
}
