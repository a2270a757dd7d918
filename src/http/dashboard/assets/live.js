// The dashboard's live calls: an EventSource on the property's feed (same origin, so the session
// cookie goes along). Rows are built with textContent only: nothing a caller or a visit sent can
// become markup.
(function () {
  'use strict';
  var table = document.getElementById('calls');
  if (!table || !window.EventSource) return;
  var body = table.tBodies[0];
  var status = document.getElementById('live-status');
  var zone = table.getAttribute('data-timezone') || undefined;
  // The same cells, in the same order, as the server's rows (pages.rs, CALL_COLUMNS).
  var columns = ['time', 'status', 'caller', 'channel', 'source', 'campaign', 'landing_page',
    'confidence', 'visitor_city', 'duration', 'recording'];
  // Events may arrive out of order (another instance relays them): a row only moves forward.
  var RANK = { ringing: 1, in_progress: 2, ended: 3, completed: 4 };
  var SHOWN = { ringing: 'ringing', in_progress: 'in progress' };

  function say(text, on) {
    if (!status) return;
    status.textContent = text;
    status.className = on ? 'live-status on' : 'live-status';
  }

  function localTime(iso) {
    try {
      // sv-SE writes 2026-11-10 10:00:00, as the server's rows do.
      return new Date(iso).toLocaleString('sv-SE', { timeZone: zone });
    } catch (e) {
      return iso;
    }
  }

  function rowFor(key) {
    for (var i = 0; i < body.rows.length; i++) {
      if (body.rows[i].getAttribute('data-key') === key) return body.rows[i];
    }
    var tr = document.createElement('tr');
    tr.setAttribute('data-key', key);
    tr.className = 'live';
    columns.forEach(function (name) {
      var td = document.createElement('td');
      td.setAttribute('data-col', name);
      tr.appendChild(td);
    });
    body.insertBefore(tr, body.firstChild);
    var none = document.getElementById('no-calls');
    if (none) none.parentNode.removeChild(none);
    return tr;
  }

  function set(tr, name, value) {
    if (value === null || value === undefined || value === '') return;
    var td = tr.querySelector('td[data-col="' + name + '"]');
    if (td) td.textContent = String(value);
  }

  // Host and path, as the report groups landing pages (the whole URL is the cell's title).
  function landingPage(url) {
    try {
      var u = new URL(url);
      return u.hostname + u.pathname;
    } catch (err) {
      return url.split(/[?#]/)[0];
    }
  }

  function joined(values, by) {
    return values.filter(function (v) { return v; }).join(by);
  }

  function show(e) {
    var tr = rowFor(e.provider + ':' + e.provider_call_id);
    var rank = RANK[e.type] || 0;
    if (rank > Number(tr.getAttribute('data-rank') || 0)) {
      tr.setAttribute('data-rank', rank);
      tr.setAttribute('data-state', e.type);
      set(tr, 'status', SHOWN[e.type] || e.outcome || e.status);
    } else if (rank >= 3 && e.outcome) {
      set(tr, 'status', e.outcome);
    }
    set(tr, 'time', e.started_at && localTime(e.started_at));
    set(tr, 'caller', joined([e.caller.number, e.caller.city], ' · '));
    var a = e.attribution;
    if (a) {
      set(tr, 'channel', a.channel);
      set(tr, 'source', joined([a.source, a.medium], ' / '));
      set(tr, 'campaign', a.campaign);
      if (a.landing_page) {
        set(tr, 'landing_page', landingPage(a.landing_page));
        tr.querySelector('td[data-col="landing_page"]').title = a.landing_page;
      }
      set(tr, 'confidence', a.confidence);
      set(tr, 'visitor_city', a.visitor_city);
    } else {
      set(tr, 'confidence', tr.querySelector('td[data-col="confidence"]').textContent || 'pending');
    }
    // Durations only grow, as the service merges them: a completion computed before the
    // call's last callback was stored must not shorten what that callback already said.
    if (typeof e.duration_s === 'number' && e.duration_s >= Number(tr.getAttribute('data-duration') || 0)) {
      tr.setAttribute('data-duration', e.duration_s);
      set(tr, 'duration', e.duration_s + ' s');
    }
    var cell = tr.querySelector('td[data-col="recording"]');
    if (e.recording_url && /^https?:\/\//.test(e.recording_url) && cell && !cell.querySelector('audio')) {
      var audio = document.createElement('audio');
      audio.controls = true;
      audio.preload = 'none';
      audio.src = e.recording_url;
      cell.appendChild(audio);
    }
  }

  var source = new EventSource(table.getAttribute('data-feed'));
  source.onopen = function () {
    table.setAttribute('data-live', 'open');
    say('live', true);
  };
  source.onerror = function () {
    var closed = source.readyState === EventSource.CLOSED;
    table.setAttribute('data-live', closed ? 'closed' : 'reconnecting');
    say(closed ? 'disconnected: reload the page' : 'reconnecting…', false);
  };
  source.onmessage = function (m) {
    var e;
    try {
      e = JSON.parse(m.data);
    } catch (err) {
      return;
    }
    show(e);
  };
})();
