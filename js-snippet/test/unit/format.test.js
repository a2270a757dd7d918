'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { buildMatcher, replaceInText, replaceAcross, replaceHref } = require('../../src/format.js');

const US = buildMatcher(['+14155550100']);
const UK = buildMatcher(['+442079460958']);
const US_T = '+14155550199';
const UK_T = '+442079460999';

// [name, matcher, input, tracking, expected]
const textCases = [
  // US spellings
  ['US (415) 555-0100', US, 'Call (415) 555-0100 today', US_T, 'Call (415) 555-0199 today'],
  ['US 415-555-0100', US, 'Call 415-555-0100 today', US_T, 'Call 415-555-0199 today'],
  ['US 415.555.0100', US, 'Call 415.555.0100 today', US_T, 'Call 415.555.0199 today'],
  ['US 415 555 0100', US, 'Call 415 555 0100 today', US_T, 'Call 415 555 0199 today'],
  ['US 4155550100', US, 'Call 4155550100 today', US_T, 'Call 4155550199 today'],
  ['US +1 415 555 0100', US, 'Call +1 415 555 0100 today', US_T, 'Call +1 415 555 0199 today'],
  ['US 1-415-555-0100', US, 'Call 1-415-555-0100 today', US_T, 'Call 1-415-555-0199 today'],
  ['US +14155550100', US, 'Call +14155550100 today', US_T, 'Call +14155550199 today'],
  ['US +1 (415) 555-0100', US, 'Call +1 (415) 555-0100 today', US_T, 'Call +1 (415) 555-0199 today'],
  ['US 1 (415) 555-0100', US, 'Call 1 (415) 555-0100 today', US_T, 'Call 1 (415) 555-0199 today'],
  ['US +1-415-555-0100', US, 'Call +1-415-555-0100 today', US_T, 'Call +1-415-555-0199 today'],
  ['US +1.415.555.0100', US, 'Call +1.415.555.0100 today', US_T, 'Call +1.415.555.0199 today'],
  ['US (415)555-0100 no space', US, '(415)555-0100', US_T, '(415)555-0199'],
  ['US 001 415 555 0100 (IDD)', US, '001 415 555 0100', US_T, '001 415 555 0199'],
  ['US whole string is the number', US, '415-555-0100', US_T, '415-555-0199'],
  ['US different area code tracking', US, 'Call (415) 555-0100', '+16505551234', 'Call (650) 555-1234'],
  // UK spellings
  ['UK 020 7946 0958', UK, 'Ring 020 7946 0958 now', UK_T, 'Ring 020 7946 0999 now'],
  ['UK +44 20 7946 0958', UK, 'Ring +44 20 7946 0958 now', UK_T, 'Ring +44 20 7946 0999 now'],
  ['UK +44 (0)20 7946 0958', UK, 'Ring +44 (0)20 7946 0958 now', UK_T, 'Ring +44 (0)20 7946 0999 now'],
  ['UK 02079460958', UK, 'Ring 02079460958 now', UK_T, 'Ring 02079460999 now'],
  ['UK +442079460958', UK, 'Ring +442079460958 now', UK_T, 'Ring +442079460999 now'],
  ['UK 0044 20 7946 0958', UK, 'Ring 0044 20 7946 0958 now', UK_T, 'Ring 0044 20 7946 0999 now'],
  ['UK (020) 7946 0958', UK, 'Ring (020) 7946 0958 now', UK_T, 'Ring (020) 7946 0999 now'],
  ['UK +44 020 7946 0958 (common mis-spelling)', UK, '+44 020 7946 0958', UK_T, '+44 020 7946 0999'],
  ['UK 011 44 20 7946 0958 (from NANP)', UK, '011 44 20 7946 0958', UK_T, '011 44 20 7946 0999'],
  ['UK 0044 (0)20 7946 0958', UK, '0044 (0)20 7946 0958', UK_T, '0044 (0)20 7946 0999'],
  ['UK +44 (0) 20 7946 0958 (space after (0))', UK, '+44 (0) 20 7946 0958', UK_T, '+44 (0) 20 7946 0999'],
  // Boundaries
  ['longer digit string untouched', US, 'Ref 14155550100123', US_T, null],
  ['order id with prefix digits untouched', US, 'Order 9914155550100', US_T, null],
  ['order id joined by dash untouched', US, 'Order 99-415-555-0100', US_T, null],
  ['dash-suffixed id untouched', US, 'SKU 415-555-0100-22', US_T, null],
  ['number glued to letters untouched', US, 'ID A4155550100B', US_T, null],
  ['number after underscore untouched', US, 'key_4155550100', US_T, null],
  ['trailing period kept', US, 'Call 415-555-0100.', US_T, 'Call 415-555-0199.'],
  ['trailing period kept (intl dots)', US, 'Call +1.415.555.0100.', US_T, 'Call +1.415.555.0199.'],
  ['outer parentheses kept', US, 'Support (415-555-0100) 24/7', US_T, 'Support (415-555-0199) 24/7'],
  ['outer parentheses with (area)', US, 'Support ((415) 555-0100)', US_T, 'Support ((415) 555-0199)'],
  ['two occurrences', US, '415-555-0100 or (415) 555-0100', US_T, '415-555-0199 or (415) 555-0199'],
  ['two occurrences separated by space only', UK, '020 7946 0958 020 7946 0958', UK_T, '020 7946 0999 020 7946 0999'],
  ['other number untouched (alone)', US, 'Fax 415-555-0101', US_T, null],
  ['other number untouched next to ours', US, 'Tel 415-555-0100 / Fax 415-555-0101', US_T, 'Tel 415-555-0199 / Fax 415-555-0101'],
  ['other number after slash', US, '415-555-0101 / 415-555-0100', US_T, '415-555-0101 / 415-555-0199'],
  ['comma list', US, '415-555-0100,415-555-0101', US_T, '415-555-0199,415-555-0101'],
  ['preceding unrelated number with space', US, 'Suite 100 415 555 0100', US_T, 'Suite 100 415 555 0199'],
  ['colon before number', US, 'Phone:4155550100', US_T, 'Phone:4155550199'],
  ['hash before number', US, 'a#4155550100', US_T, 'a#4155550199'],
  ['period right before next sentence', US, 'Call 415-555-0100.Thanks', US_T, 'Call 415-555-0199.Thanks'],
  ['CJK text glued to number', US, '電話4155550100まで', US_T, '電話4155550199まで'],
  // NBSP and other separators
  ['NBSP separators', US, 'Call 415\u00a0555\u00a00100', US_T, 'Call 415\u00a0555\u00a00199'],
  ['NBSP intl UK', UK, '+44\u00a020\u00a07946\u00a00958', UK_T, '+44\u00a020\u00a07946\u00a00999'],
  ['thin / narrow no-break spaces', UK, '020\u20097946\u202f0958', UK_T, '020\u20097946\u202f0999'],
  ['non-breaking hyphen and en dash', US, '415\u2011555\u20130100', US_T, '415\u2011555\u20130199'],
  ['slash separator', US, '415/555-0100', US_T, '415/555-0199'],
  // Different-length tracking numbers (same country): template keeps layout
  ['UK shorter tracking (9-digit NSN)', UK, 'Ring 020 7946 0958 now', '+44169773123', 'Ring 016 9773 123 now'],
  ['UK shorter tracking intl', UK, '+44 (0)20 7946 0958', '+44169773123', '+44 (0)16 9773 123'],
  ['DE longer tracking', buildMatcher('+49301234567'), 'Tel. 030 1234567.', '+4930123456789', 'Tel. 030 123456789.'],
  ['DE shorter tracking drops emptied groups', buildMatcher('+4930123456789'), '030 1234 567 89!', '+49301234567', '030 1234 567!'],
  // Different country: canonical international spelling in the original's separator style
  ['US site, UK tracking (paren style)', US, 'Call (415) 555-0100 now', UK_T, 'Call +44 20 7946 0999 now'],
  ['US site, UK tracking (dashes)', US, 'Call 1-415-555-0100.', UK_T, 'Call +44-20-7946-0999.'],
  ['US site, UK tracking (compact +)', US, 'x +14155550100 y', UK_T, 'x +442079460999 y'],
  ['UK site, US tracking', UK, '+44 (0)20 7946 0958', US_T, '+1 415 555 0199'],
  ['UK site, US tracking via 00', UK, '0044 20 7946 0958', US_T, '00 1 415 555 0199'],
  // Other countries
  ['Italy keeps leading 0 (no trunk prefix)', buildMatcher('+390612345678'), '06 1234 5678 / +39 06 1234 5678', '+390698765432', '06 9876 5432 / +39 06 9876 5432'],
  ['Russia trunk 8', buildMatcher('+74951234567'), '8 (495) 123-45-67', '+74957654321', '8 (495) 765-43-21'],
  ['France 0 trunk', buildMatcher('+33123456789'), '01 23 45 67 89', '+33198765432', '01 98 76 54 32'],
  // Two site numbers on one property
  ['two site numbers both replaced', buildMatcher(['+14155550100', '+442079460958']), 'US 415-555-0100, UK 020 7946 0958', '+14155550199', 'US 415-555-0199, UK +1 415 555 0199'],
  ['two site numbers, same country', buildMatcher(['+14155550100', '+14155550111']), '(415) 555-0111 or 415.555.0100', US_T, '(415) 555-0199 or 415.555.0199'],
  // No match
  ['null: empty string', US, '', US_T, null],
  ['null: no digits', US, 'Contact us today!', US_T, null],
  ['null: partial number', US, 'Call 555-0100', US_T, null],
  ['null: UK number for US matcher', US, '020 7946 0958', US_T, null],
  ['null: invalid tracking number', US, '415-555-0100', 'abc', null],
  ['null: matcher with no valid numbers', buildMatcher([]), '415-555-0100', US_T, null],
];

for (const [name, m, input, tracking, expected] of textCases) {
  test(`replaceInText: ${name}`, () => {
    assert.equal(replaceInText(m, input, tracking), expected);
  });
}

const hrefCases = [
  ['tel:+14155550100', US, 'tel:+14155550100', US_T, 'tel:+14155550199'],
  ['tel:415-555-0100', US, 'tel:415-555-0100', US_T, 'tel:415-555-0199'],
  ['tel:+1-415-555-0100', US, 'tel:+1-415-555-0100', US_T, 'tel:+1-415-555-0199'],
  ['callto:+442079460958', UK, 'callto:+442079460958', UK_T, 'callto:+442079460999'],
  ['TEL: uppercase scheme', US, 'TEL:+14155550100', US_T, 'TEL:+14155550199'],
  ['tel with %20 separators', UK, 'tel:+44%2020%207946%200958', UK_T, 'tel:+44%2020%207946%200999'],
  ['tel with ;ext parameter', US, 'tel:+1-415-555-0100;ext=22', US_T, 'tel:+1-415-555-0199;ext=22'],
  ['tel with %2B plus', US, 'tel:%2B14155550100', US_T, 'tel:%2B14155550199'],
  ['tel with %2b and %20', UK, 'tel:%2b44%2020%207946%200958', UK_T, 'tel:%2B44%2020%207946%200999'],
  ['callto:// form', UK, 'callto://+442079460958', UK_T, 'callto://+442079460999'],
  ['tel cross-country %20', US, 'tel:+1%20415%20555%200100', UK_T, 'tel:+44%2020%207946%200999'],
  ['null: https href', US, 'https://example.com/4155550100', US_T, null],
  ['null: tel with other number', US, 'tel:+14155550101', US_T, null],
  ['null: mailto', US, 'mailto:a@b.c', US_T, null],
];

for (const [name, m, input, tracking, expected] of hrefCases) {
  test(`replaceHref: ${name}`, () => {
    assert.equal(replaceHref(m, input, tracking), expected);
  });
}

const acrossCases = [
  ['split over <b>, same digits', US, ['Call ', '415', '-555-0100 now'], US_T, ['Call ', '415', '-555-0199 now']],
  ['split over <b>, other area code', US, ['Call ', '415', '-555-0100 now'], '+16505551234', ['Call ', '650', '-555-1234 now']],
  ['split mid-group boundary kept per segment', US, ['(41', '5) 555', '-0100'], '+16505551234', ['(65', '0) 555', '-1234']],
  ['UK split into three', UK, ['Ring ', '+44 ', '(0)20', ' 7946 0958', '.'], UK_T, ['Ring ', '+44 ', '(0)20', ' 7946 0999', '.']],
  ['split number plus unrelated segment', US, ['415', '555', '0100', ' and 415-555-0101'], US_T, ['415', '555', '0199', ' and 415-555-0101']],
  ['shorter tracking across segments', UK, ['020 ', '7946', ' 0958'], '+44169773123', ['016 ', '9773', ' 123']],
  ['cross-country: canonical goes into first segment', US, ['(415) ', '555-0100'], UK_T, ['+44 20 7946 0999', '']],
  ['null when split texts contain no site number', US, ['Call ', '415', '-555-0101'], US_T, null],
  ['longer digit run across segments untouched', US, ['99', '4155550100'], US_T, null],
];

for (const [name, m, input, tracking, expected] of acrossCases) {
  test(`replaceAcross: ${name}`, () => {
    assert.deepEqual(replaceAcross(m, input, tracking), expected);
  });
}

test('replaceAcross: single-segment result agrees with replaceInText', () => {
  for (const [, m, input, tracking, expected] of textCases) {
    const r = replaceAcross(m, [input], tracking);
    assert.deepEqual(r, expected === null ? null : [expected]);
  }
});

test('buildMatcher accepts a single string and formatted E.164', () => {
  assert.equal(replaceInText(buildMatcher('+1 (415) 555-0100'), '415-555-0100', US_T), '415-555-0199');
});

test('matcher is reusable and output does not re-match (idempotent)', () => {
  const once = replaceInText(US, 'Call 415-555-0100', US_T);
  assert.equal(once, 'Call 415-555-0199');
  assert.equal(replaceInText(US, once, US_T), null);
  assert.equal(replaceInText(US, 'Call 415-555-0100', US_T), 'Call 415-555-0199');
});

test('input arrays are not mutated', () => {
  const texts = ['Call ', '415', '-555-0100'];
  replaceAcross(US, texts, US_T);
  assert.deepEqual(texts, ['Call ', '415', '-555-0100']);
});

test('returns the string (not null) when tracking equals the site number', () => {
  assert.equal(replaceInText(US, '415-555-0100', '+14155550100'), '415-555-0100');
});

test('source parses as ES2017 (no ?. / ?? / other newer syntax)', () => {
  const src = require('node:fs').readFileSync(require('node:path').join(__dirname, '../../src/format.js'), 'utf8');
  assert.doesNotThrow(() => require('acorn').parse(src, { ecmaVersion: 2017, sourceType: 'script' }));
});

// The whole snippet's 3 KB budget is enforced by build.mjs; this keeps the matcher's share in check.
test('minified + gzipped size stays under 1.25 KB', async () => {
  const fs = require('node:fs');
  const { minify } = require('terser');
  const src = fs.readFileSync(require('node:path').join(__dirname, '../../src/format.js'), 'utf8');
  const { code } = await minify(src, { compress: true, mangle: true, toplevel: true });
  const size = require('node:zlib').gzipSync(code, { level: 9 }).length;
  assert.ok(size < 1280, `gzipped size ${size}`);
});

test('fuzz: same-length replacement only touches digits and round-trips', () => {
  let seed = 12345;
  const rnd = (n) => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
  const tokens = ['(415) 555-0100', '+1 415 555 0100', '415.555.0100', '1-415-555-0100', '4155550100',
    'Call', ' ', '\u00a0', '-', '.', '(', ')', '/', '+', ', ', 'x', '. ', '12', '415', '555', '0100', '2024'];
  const back = buildMatcher(US_T);
  let changed = 0;
  for (let n = 0; n < 2000; n++) {
    let s = '';
    for (let k = rnd(8) + 1; k > 0; k--) s += tokens[rnd(tokens.length)];
    const out = replaceInText(US, s, US_T);
    if (out === null) continue;
    changed++;
    assert.equal(out.length, s.length, s);
    for (let k = 0; k < s.length; k++) if (!/\d/.test(s[k])) assert.equal(out[k], s[k], s);
    assert.equal(replaceInText(back, out, '+14155550100'), s, s);
  }
  assert.ok(changed > 100);
});
