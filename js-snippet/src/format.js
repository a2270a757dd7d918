/*
 * Switchboard snippet: format-preserving phone-number matcher/replacer.
 * Plain ES2017, no dependencies. Exported for Node tests; in the browser bundle the build
 * concatenates this file inside the IIFE (internal names are prefixed `fmt` to avoid clashes).
 */

// Two-digit country calling codes, keyed by first digit 2..9: the second digits that complete a
// 2-digit code. 1 (NANP) and 7 (RU/KZ) are 1-digit codes; every other code is 3 digits
// (ITU codes are prefix-free, so this is unambiguous).
var FMT_CC2 = '07|0123469|013456789|12345678|0123456||1246|0123458'.split('|');

// Separators allowed between two digit groups of one number: spaces (incl. NBSP, thin and
// narrow spaces: JS \s covers them), - and U+2010..U+2013 dashes, . ( ) / +. At most 3 chars.
var FMT_SEP = /^[\s\-\u2010-\u2013.()\/+]{1,3}$/;

// E.164 -> { c: country code, n: national significant number, t: trunk prefix } or null.
function fmtParse(e164) {
  var d = ('' + e164).replace(/\D/g, ''), a = d[0], c;
  if (d.length < 7 || a == '0') return null;
  c = a == '1' || a == '7' ? a : d.slice(0, FMT_CC2[a - 2].indexOf(d[1]) < 0 ? 3 : 2);
  return {
    c: c,
    n: d.slice(c.length),
    // Trunk prefix: NANP 1, RU/KZ 8, HU 06, none for Italy (its leading 0 is part of the national
    // number, so it stays in n), 0 everywhere else (harmless extra forms where there is none).
    t: c == '39' ? '' : { 1: '1', 7: '8', 36: '06' }[c] || '0'
  };
}

// Precompute every digit form of the site number(s), in f. Each form maps to a record:
// c = site country code, p = international prefix written before the country code
// ('' after '+', '00', '011'; absent = national spelling), t = trunk prefix present,
// z = "(0)" / "0" written between country code and national number.
// n lists the national significant numbers: every form ends with one of them (see replaceAcross).
function buildMatcher(siteNumbersE164) {
  var list = [].concat(siteNumbersE164), m = { f: {}, n: [] }, i, p;
  function add(d, r) {
    m.f[d] = r;
  }
  for (i = 0; i < list.length; i++) {
    p = fmtParse(list[i]);
    if (!p) continue;
    m.n.push(p.n);
    add(p.n, { c: p.c });
    if (p.t) add(p.t + p.n, { c: p.c, t: 1 });
    ['', '00', '011'].forEach(function (q) {
      add(q + p.c + p.n, { c: p.c, p: q });
      if (p.t == '0') add(q + p.c + '0' + p.n, { c: p.c, p: q, z: 1 });
    });
  }
  return m;
}

// The match may not be glued to a word character, nor joined to another digit by a single
// tight separator (order ids like 99-415-555-0100, 415-555-0100-22, dates).
function fmtEdge(s, a, b) {
  return !/(\w|\d[-.\/\u2010-\u2013])$/.test(s.slice(a < 2 ? 0 : a - 2, a)) && !/^(\w|[-.\/\u2010-\u2013]\d)/.test(s.slice(b, b + 2));
}

// texts: strings of consecutive text nodes. Returns the replaced strings (same length array,
// every digit kept in the segment it came from), or null if no site number was found.
function replaceAcross(matcher, texts, trackingE164) {
  var s = texts.join(''), d = s.replace(/\D/g, ''), re = /\d+/g, g = [], rep = [], out = [], pos = 0,
    t, hit, r, i, j, k, f, best, a, b, P, T, sp, sep;
  // Fast exit, exact: a match's digits are contiguous in the text's digits and end with a site
  // number's national significant number. Most text on a page fails this; the scan below is costlier.
  if (!matcher || !matcher.n.some(function (n) {
    return d.indexOf(n) >= 0;
  }) || !(t = fmtParse(trackingE164))) return null;
  while ((r = re.exec(s))) g.push([r.index, re.lastIndex, r[0]]);
  for (i = 0; i < g.length; i++) {
    // Longest run of whole digit groups starting at group i whose digits are a site form.
    for (d = '', best = -1, j = i; j < g.length && (j == i || FMT_SEP.test(s.slice(g[j - 1][1], g[j][0]))); j++) {
      d += g[j][2];
      if (d.length > 19) break; // longest form: 011 + 15-digit E.164 + (0)
      if (matcher.f[d] && fmtEdge(s, g[i][0], g[j][1])) {
        best = j;
        f = matcher.f[d];
      }
    }
    if (best < 0) continue;
    hit = 1;
    a = g[i][0];
    b = g[best][1];
    for (P = [], k = a; k < b; k++) /\d/.test(s[k]) && P.push(k);
    // Tracking digits in the same form: same international prefix / trunk / (0) as the original.
    T = f.p == null ? (f.t ? t.t : '') + t.n : f.p + t.c + (f.z && t.t == '0' ? '0' : '') + t.n;
    if (f.c == t.c) {
      // Same country: walk the template, substitute digits in place. If the tracking number is
      // longer the last digit slot takes the surplus; if shorter, the tail (and its separators) goes.
      for (k = 0; k < P.length; k++) rep[P[k]] = k < P.length - 1 ? T.charAt(k) : T.slice(k);
      for (k = P[T.length - 1] + 1; T.length < P.length && k < b; k++) rep[k] = '';
    } else {
      // Other country: the original layout is meaningless, write a canonical international
      // spelling using the original's first separator ('' when it was written compactly).
      sp = s.slice(a, b);
      sep = (sp.match(/[^\d()+]/) || [''])[0];
      if (s[a - 1] == '(' && sp.indexOf(')') >= 0) a--;
      if (s[a - 1] == '+') a--;
      for (k = a; k < b; k++) rep[k] = '';
      rep[a] = (f.p ? f.p + sep : '+') + t.c + sep + (t.c == '1' && t.n.length == 10 ?
        t.n.replace(/(...)(...)/, '$1' + sep + '$2' + sep) : t.n.replace(/\B(?=(\d{4})+$)/g, sep));
    }
    i = best;
  }
  if (!hit) return null;
  for (i = 0; i < texts.length; i++) {
    for (r = '', k = 0; k < texts[i].length; k++, pos++) r += pos in rep ? rep[pos] : texts[i][k];
    out.push(r);
  }
  return out;
}

// Single string; null when nothing matched.
function replaceInText(matcher, text, trackingE164) {
  var r = replaceAcross(matcher, [text], trackingE164);
  return r && r[0];
}

// tel:/callto: href values. Parameters (;ext=, ?...) are kept; %20 separators are preserved, and
// so is a percent-encoded plus (tel:%2B1...), which some CMSs write.
function replaceHref(matcher, href, trackingE164) {
  var m = /^(\s*(?:tel|callto):)([^;?#]*)([\s\S]*)$/i.exec(href || ''), e, r;
  if (!m) return null;
  e = /%2B/i.test(m[2]);
  r = replaceInText(matcher, m[2].replace(/%20/g, '\u2007').replace(/%2B/gi, '+'), trackingE164);
  return r == null ? null : m[1] + r.replace(/\u2007/g, '%20').replace(/\+/g, e ? '%2B' : '+') + m[3];
}

if (typeof module !== 'undefined' && module.exports) module.exports = { buildMatcher, replaceInText, replaceAcross, replaceHref };
