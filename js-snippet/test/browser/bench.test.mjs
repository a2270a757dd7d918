// A page of 10,000 elements: correctness, and how long a full swap takes. The figures are
// printed (BENCH lines), never asserted: timings on a shared CI machine are not a pass/fail signal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, spell } from './harness.mjs';

let h;
before(async () => {
  h = await startHarness();
});
after(async () => {
  if (h) await h.stop();
});

const RUNS = 9;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => x.toFixed(2);

test('a page with 10,000 elements is swapped completely; swap time is reported', async () => {
  const v = await h.open('big.html', { key: 'us' });
  const n = await v.number();
  const check = () =>
    v.page.evaluate(() => {
      const list = document.getElementById('list');
      return {
        elements: list.getElementsByTagName('*').length,
        tel: [...list.querySelectorAll('a[href^="tel:"]')].map((a) => a.getAttribute('href') + ' ' + a.textContent),
        untouched: [...list.querySelectorAll('em')].filter((e) => /SKU 99-1\d{5}/.test(e.textContent)).length,
      };
    });
  const want = `${spell('tel:+1##########', n)} ${spell('(###) ###-####', n)}`;
  const first = await check();
  assert.equal(first.elements, 10_000);
  assert.equal(first.tel.length, 20);
  assert.deepEqual(new Set(first.tel), new Set([want]));
  assert.equal(first.untouched, 1980, 'digits that are not the number are left alone');

  const figures = await v.page.evaluate((runs) => {
    const list = document.getElementById('list');
    const time = (f) => {
      const t0 = performance.now();
      f();
      return performance.now() - t0;
    };
    const full = [];
    const idle = [];
    for (let i = 0; i < runs; i++) {
      list.innerHTML = window.BIG_HTML; // the site's numbers again (not timed)
      full.push(time(() => window.switchboard.swap())); // 20 numbers and 20 links to rewrite
      idle.push(time(() => window.switchboard.swap())); // nothing left to rewrite
    }
    return { full, idle };
  }, RUNS);
  const after = await check();
  assert.deepEqual(new Set(after.tel), new Set([want]), 'the timed swaps did the work');
  assert.equal(after.untouched, 1980);

  // The observer's share: one widget added to the big page costs a scan of the widget only.
  const added = await v.page.evaluate((runs) => {
    const out = [];
    return new Promise((resolve) => {
      let t0;
      // Registered after the snippet's observer, so it is called after it in the same checkpoint.
      const mo = new MutationObserver(() => {
        out.push(performance.now() - t0);
        if (out.length === runs) {
          mo.disconnect();
          resolve(out);
        } else setTimeout(step);
      });
      mo.observe(document.body, { childList: true, subtree: true });
      const step = () => {
        t0 = performance.now();
        const w = document.createElement('div');
        w.innerHTML = '<p>Questions? Call <b>(415) 555-0100</b></p>';
        document.body.append(w);
      };
      step();
    });
  }, RUNS);
  const widgets = await v.page.evaluate(() => document.querySelectorAll('body > div:not(#list) b').length);
  assert.equal(widgets, RUNS);
  assert.equal(
    await v.page.evaluate(() => [...document.querySelectorAll('body > div:not(#list) b')].every((b) => b.textContent !== '(415) 555-0100')),
    true,
    'every widget was swapped',
  );

  console.log(`BENCH swap 10000 elements: ${ms(median(figures.full))} ms (median of ${RUNS})`);
  console.log(`BENCH swap 10000 elements, nothing left to replace: ${ms(median(figures.idle))} ms (median of ${RUNS})`);
  console.log(`BENCH observer, one widget added to the 10000-element page: ${ms(median(added))} ms (median of ${RUNS})`);
  assert.deepEqual(v.errors, []);
  await v.close();
});
