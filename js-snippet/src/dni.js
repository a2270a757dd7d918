/*
 * Switchboard dni.js: shows each visitor their own tracking number (dynamic number insertion).
 *
 *   <script async src="https://<service>/dni.js" data-key="<public key>"></script>
 *
 * Optional attributes: data-api (service base URL; default: the origin of this script's src),
 * data-consent="required" (nothing at all happens until switchboard.consent()),
 * data-storage="session" (sessionStorage only; default localStorage, else a first-party cookie),
 * data-skip-webdriver="true" (automated browsers keep the default numbers).
 *
 * Rules this file lives by: plain ES2017, no dependencies, one global (window.switchboard), and
 * nothing it does may break the page: every entry point is wrapped in try/catch, and any
 * failure (network, storage, odd DOM) leaves the page's own numbers where they are.
 * build.mjs inlines format.js at the marker below and minifies the whole IIFE to dist/dni.js.
 */
(function (w, d) {
  'use strict';

  /* @include format.js */

  // Elements whose text is part of the surrounding text: a number split over them
  // (<b>415</b>-555-0100) is matched across their text nodes. Any other element ends a run.
  // Tested against localName (lowercase, and cheaper to read than nodeName).
  var INLINE = /^(a|abbr|b|bdi|bdo|cite|code|data|dfn|em|font|i|kbd|mark|q|s|samp|small|span|strong|sub|sup|time|tt|u|var)$/;
  // Never touched, with everything inside. SELECT: an option without a value attribute submits
  // its text, so rewriting it would change form data.
  var IGNORE = 'script,style,noscript,textarea,select,[data-switchboard-ignore],[contenteditable]:not([contenteditable=false])';
  var LEASE_RENEW_AT = 0.4; // renew when this share of the lease has passed (the timer fires at 0.5)

  var me = d.currentScript;
  var api = w.switchboard;
  var key, endpoint, storage, cookieOk, storeKey, started, matcher, number, applied;
  var shown = []; // tracking numbers this page has shown before the current one
  var run; // text nodes of the run being collected by walk()
  var observer, busy, again, abortTimer, renewTimer, lastUrl, lease, answeredAt, pushed;

  // Wraps a callback the page or the browser calls, so that nothing ever throws out of it.
  function safe(f) {
    return function () {
      try {
        return f.apply(this, arguments);
      } catch (e) {}
    };
  }

  if (api || !me) return; // loaded twice: the first copy stays in charge
  api = w.switchboard = { number: null, session: null, swap: safe(swapAll), consent: safe(start) };

  // ---- storage: { s: session id, n: number, r: replace list, e: expiry (ms) } ----

  function load() {
    try {
      return JSON.parse(storage ? storage.getItem(storeKey)
        : cookieOk ? decodeURIComponent((d.cookie.match('(?:^|; )' + storeKey + '=([^;]*)') || [])[1]) : '');
    } catch (e) {}
  }

  function save(record) {
    try {
      record = JSON.stringify(record);
      if (storage) storage.setItem(storeKey, record);
      else if (cookieOk) d.cookie = storeKey + '=' + encodeURIComponent(record) + ';path=/;max-age=2592000;samesite=lax';
    } catch (e) {}
  }

  // ---- swapping ----

  // Writes the number into every text run and tel:/callto: link under root (an element), or
  // into root alone (a text node).
  function scan(root) {
    var el = root && (root.nodeType == 1 ? root : root.parentNode);
    if (!matcher || !el || el.closest(IGNORE)) return;
    run = [];
    if (root == el) {
      if (el.localName == 'a') link(el);
      walk(el);
    } else run.push(root);
    flush();
    // Drop the records of our own writes: they would only lead to a rescan that finds nothing.
    if (observer) observer.takeRecords();
  }

  function swapAll() {
    scan(d.documentElement);
  }

  // Collects text nodes into the current run (recursion depth = DOM depth); an element that is not
  // inline ends the run before it and after it.
  function walk(node) {
    for (node = node.firstChild; node; node = node.nextSibling) {
      if (node.nodeType == 3) run.push(node);
      else if (node.nodeType == 1 && !node.matches(IGNORE)) {
        var name = node.localName;
        if (name == 'a') link(node);
        if (INLINE.test(name)) walk(node);
        else {
          flush();
          walk(node);
          flush();
        }
      }
    }
  }

  // Plain loops and a fresh array rather than map/forEach and `length = 0`: this runs for every
  // block of the page, and those cost a third of a full scan.
  function flush() {
    var texts = [], out, i;
    if (!run.length) return;
    for (i = 0; i < run.length; i++) texts[i] = run[i].data;
    out = replaceAcross(matcher, texts, number);
    // Only write what changed: each write costs a mutation record and possibly a relayout.
    for (i = 0; out && i < run.length; i++) if (out[i] != texts[i]) run[i].data = out[i];
    run = [];
  }

  function link(a) {
    var href = a.getAttribute('href');
    var out = href && replaceHref(matcher, href, number);
    if (out && out != href) a.setAttribute('href', out);
  }

  // Where to rescan for a changed node: an added block element is scanned alone; a text node or
  // inline element is scanned with its block, since it may complete a number split over elements;
  // but straight under <body> it is scanned alone (the parser adds such nodes all along a page load:
  // rescanning the whole page for each would make loading quadratic).
  function scope(node) {
    var b = node;
    while (b && (b.nodeType != 1 || INLINE.test(b.localName))) b = b.parentNode;
    return b == d.body || b == d.documentElement ? node : b;
  }

  // Content added later (widgets, route changes, AJAX): only the added or changed nodes are
  // scanned, each scope once, and not again inside another scope of the same batch.
  function onMutations(records) {
    var scopes = new Set();
    records.forEach(function (r) {
      if (r.type == 'childList') for (var i = 0; i < r.addedNodes.length; i++) scopes.add(scope(r.addedNodes[i]));
      else scopes.add(scope(r.target));
    });
    scopes.forEach(function (s) {
      for (var p = s && s.parentNode; p; p = p.parentNode) if (scopes.has(p)) return;
      scan(s);
    });
  }

  // Shows number n in place of the replace list r (and of any number this page showed before,
  // so that a corrected answer replaces a stale cached one).
  function show(n, r) {
    if (applied == n + r) return;
    applied = n + r;
    if (number && number != n) shown.push(number);
    number = api.number = n;
    matcher = buildMatcher(r.concat(shown).filter(function (x) {
      return x != n;
    }));
    swapAll();
    if (!observer && w.MutationObserver) {
      observer = new MutationObserver(safe(onMutations));
      observer.observe(d.documentElement, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ['href'] });
    }
  }

  // ---- the service ----

  // The visitor's Google Analytics client id, for the call's GA4 event: the last two parts of
  // the _ga cookie (GA1.1.<random>.<seconds>). Undefined (left out of the request) without one.
  var gaClientId = safe(function () {
    return d.cookie.match(/\b_ga=GA\d+\.\d+\.(\d+\.\d+)/)[1];
  });

  // One request at a time: a page view asked for meanwhile is sent when the answer is in, with
  // the session id it brings (two requests without one would open two sessions). A renewal
  // (`renew`: keep the lease, count no page view) asked for meanwhile is dropped: the request in
  // flight renews the lease anyway.
  function post(renewal) {
    if (busy) return renewal || (again = 1);
    busy = 1;
    again = 0;
    try {
      var body = JSON.stringify({ key: key, session: api.session, url: (lastUrl = location.href), referrer: d.referrer, renew: renewal, ga_client_id: gaClientId() });
      if (w.fetch && w.AbortController) {
        var ctl = new AbortController();
        abortTimer = setTimeout(function () {
          ctl.abort();
        }, 2000);
        // A string body goes as text/plain: a CORS simple request, no preflight.
        fetch(endpoint, { method: 'POST', body: body, signal: ctl.signal })
          .then(function (res) {
            return res.ok && res.json();
          })
          .then(done, done);
      } else {
        var xhr = new XMLHttpRequest();
        xhr.open('POST', endpoint);
        xhr.timeout = 2000;
        xhr.onloadend = function () {
          var a;
          try {
            a = xhr.status == 200 && JSON.parse(xhr.responseText);
          } catch (e) {}
          done(a);
        };
        xhr.send(body);
      }
    } catch (e) {
      done(); // never stay busy
    }
  }

  // Any answer but a well-formed 200 (timeout, refused, 4xx, bad JSON) changes nothing.
  var done = safe(function (a) {
    clearTimeout(abortTimer);
    busy = 0;
    try {
      if (a && typeof a.number == 'string' && Array.isArray(a.replace)) {
        api.session = a.session;
        lease = a.expires_in * 1000 || 0;
        answeredAt = Date.now();
        save({ s: a.session, n: a.number, r: a.replace, e: answeredAt + lease });
        show(a.number, a.replace);
        var dl = w.dataLayer;
        if (Array.isArray(dl) && pushed != a.number) dl.push({ event: 'switchboard_number', number: (pushed = a.number), channel: a.channel });
        clearTimeout(renewTimer);
        if (lease) renewTimer = setTimeout(renew, lease / 2);
      }
    } catch (e) {}
    if (again) post();
  });

  // Keeps the lease while the page is visible: from the timer, and when the page is shown again.
  var renew = safe(function () {
    if (!d.hidden && lease && Date.now() - answeredAt > lease * LEASE_RENEW_AT) post(true);
  });

  // A page view of a single-page app: the URL changed without a page load.
  var view = safe(function () {
    if (location.href != lastUrl) post();
  });

  function start() {
    if (started) return;
    started = 1;
    // Storage as configured; the default falls back to a cookie where localStorage is refused.
    cookieOk = me.getAttribute('data-storage') != 'session';
    try {
      storage = w[cookieOk ? 'localStorage' : 'sessionStorage'];
      storage.setItem(storeKey + '?', 1); // throws where storage is refused or full
      storage.removeItem(storeKey + '?');
    } catch (e) {
      storage = 0;
    }
    var cached = load() || {};
    if (typeof cached.s == 'string') api.session = cached.s;
    // No flicker: a returning visitor's number is shown now, before the service answers.
    // (Guarded on its own: a damaged record must not keep the page view from being sent.)
    try {
      if (cached.e > Date.now()) show(cached.n, cached.r);
    } catch (e) {}
    if (d.readyState == 'loading') d.addEventListener('DOMContentLoaded', api.swap);
    ['pushState', 'replaceState'].forEach(function (k) {
      var original = history[k];
      history[k] = function () {
        var r = original.apply(this, arguments);
        view();
        return r;
      };
    });
    w.addEventListener('popstate', view);
    d.addEventListener('visibilitychange', renew);
    post();
  }

  try {
    key = me.getAttribute('data-key');
    storeKey = 'switchboard_' + key;
    endpoint = (me.getAttribute('data-api') || new URL(me.src).origin).replace(/\/+$/, '') + '/v1/dni/session';
    // Marking a skipped visitor as started also makes a later consent() do nothing.
    started = !key || me.getAttribute('data-skip-webdriver') == 'true' && navigator.webdriver;
    if (me.getAttribute('data-consent') != 'required') start();
  } catch (e) {}
})(window, document);
