// Rampart live dashboard. Plain ES2020, no libraries, no build step.
//
// Data never becomes markup: every value from the server is put on the page with
// textContent or setAttribute (see `el`), so a command such as `<img src=x onerror=…>`
// shows as the text it is. The page's Content-Security-Policy backs this up.
'use strict';

const TOKEN_KEY = 'rampart.token';
const PAGE_SIZE = 100;
const FEED_CAP = 5000;
const DECISIONS = {
  allow: { icon: '✓', label: 'allow' },
  deny: { icon: '✕', label: 'deny' },
  ask: { icon: '?', label: 'ask' },
  log: { icon: '●', label: 'log' },
  // Not a decision: a library's report that execs ran without being checked (it failed
  // open because no server answered). Shown in its own colour, never like an allow.
  unchecked: { icon: '!', label: 'unchecked' },
};

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  source: null, // EventSource
  backoff: 1000,
  reconnectTimer: null,
  everConnected: false,
  seen: new Set(), // event ids on the feed
  oldestId: null,
  newestId: null,
  exhausted: false,
  loading: false,
  feedGeneration: 0,
  paused: false,
  buffered: [],
  filters: { agent: '', session: '', decision: '', q: '', quiet: false },
  agents: new Set(),
  sessions: new Map(), // session -> id of its newest event seen (ULIDs sort by time)
  approvals: new Map(),
  stats: null,
  statsSince: '24h',
  minutes: new Map(), // minute number -> {allow, deny, ask, log}
  chartSeen: new Set(),
  renderQueued: false,
};

// ---------------------------------------------------------------------------
// Small helpers

/** Creates an element. `props.text` becomes textContent; other props are attributes. */
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'class') node.className = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const svgNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const node = document.createElementNS(svgNS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  return node;
}

const number = (n) => Number(n || 0).toLocaleString('en-US');
// "1 policy, 3 rules", as the CLI says it.
const policiesAndRules = (p, r) =>
  `${number(p)} ${Number(p) === 1 ? 'policy' : 'policies'}, ${number(r)} ${Number(r) === 1 ? 'rule' : 'rules'}`;

// The printable rule of rampart-contract (issue 12, item 8), for text an agent chose
// (commands, agent and session names, messages): control characters, DEL, C1, bidi
// controls, zero-width characters and line/paragraph separators are shown escaped, so a
// right-to-left override cannot reorder what the approver reads and a newline cannot
// hide the rest of a command. The elements showing such text are bidi-isolated (CSS).
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u200b-\u200d\u2060\ufeff\u2028\u2029]/g;
function visible(text) {
  return String(text ?? '').replace(UNPRINTABLE, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const code = c.charCodeAt(0);
    if (code < 0x80) return `\\x${code.toString(16).padStart(2, '0')}`;
    return `\\u{${code.toString(16).padStart(4, '0')}}`;
  });
}

function decisionKey(decision) {
  return decision === 'watch' ? 'log' : decision in DECISIONS ? decision : 'log';
}

function badge(decision) {
  const key = decisionKey(decision);
  const d = DECISIONS[key];
  return el('span', { class: `badge d-${key}`, 'data-decision': key },
    el('span', { class: 'icon', 'aria-hidden': 'true', text: d.icon }),
    el('span', { text: decision || d.label }));
}

// Monitor mode refuses nothing: its deny (and ask) events ran. They are shown as what
// they would have been, never as red denials.
function wouldBe(ev) {
  return ev.mode === 'monitor' && (ev.decision === 'deny' || ev.decision === 'ask');
}

function eventBadge(ev) {
  if (!wouldBe(ev)) return badge(ev.decision);
  return el('span', { class: 'badge d-would', 'data-decision': 'would', title: 'monitor mode: it ran' },
    el('span', { class: 'icon', 'aria-hidden': 'true', text: '○' }),
    el('span', { text: `would ${ev.decision}` }));
}

function timeText(ts) {
  const date = new Date(ts);
  if (Number.isNaN(date.getTime())) return ts || '';
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  if (new Date().toDateString() === date.toDateString()) return time;
  return `${date.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

let toastTimer = null;
$('toast').addEventListener('click', () => { $('toast').hidden = true; });
function toast(text, kind) {
  const node = $('toast');
  node.textContent = text;
  node.dataset.kind = kind || 'info';
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 3500);
}

// ---------------------------------------------------------------------------
// Talking to the server

class AuthError extends Error {}

async function request(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401) {
    const reason = data && data.error ? data.error : 'unauthorized';
    loggedOut(`The server refused this token (${reason}).`);
    throw new AuthError(reason);
  }
  return { status: response.status, ok: response.ok, data };
}

async function api(method, path, body) {
  const r = await request(method, path, body);
  if (!r.ok) throw new Error((r.data && r.data.error) || `HTTP ${r.status}`);
  return r.data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== '' && value != null) q.set(key, value);
  const text = q.toString();
  return text ? `?${text}` : '';
}

// ---------------------------------------------------------------------------
// Login

function takeTokenFromUrl() {
  const hash = window.location.hash.replace(/^#/, '');
  if (!hash) return;
  const params = new URLSearchParams(hash);
  const token = params.get('token');
  if (token) sessionStorage.setItem(TOKEN_KEY, token.trim());
  // The fragment never reached the server; keep it out of history and screenshots too.
  history.replaceState(null, '', window.location.pathname + window.location.search);
}

function showLogin(message) {
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  const error = $('login-error');
  error.hidden = !message;
  error.textContent = message || '';
  setConn('offline', 'Not logged in');
  $('token-input').focus();
}

function loggedOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  stopStream();
  showLogin(`${message} It may have been mistyped or rotated: run \`rampart dashboard\` for a fresh link, or paste the output of \`rampart token show\`.`);
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token-input').value.trim();
  if (!token) {
    showLogin('Paste a token first.');
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token-input').value = '';
  start();
});

$('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  stopStream();
  showLogin('Logged out.');
});

// ---------------------------------------------------------------------------
// Connection state and the event stream

function setConn(kind, text) {
  const node = $('conn');
  node.dataset.state = kind;
  $('conn-text').textContent = text;
}

function stopStream() {
  clearTimeout(state.reconnectTimer);
  if (state.source) state.source.close();
  state.source = null;
}

function connectStream() {
  stopStream();
  if (!state.token) return;
  // Quiet decisions (known-benign allows) only when the "quiet" box is ticked.
  const all = state.filters.quiet ? '&all=true' : '';
  const source = new EventSource(`/v1/events/stream?token=${encodeURIComponent(state.token)}${all}`);
  state.source = source;
  source.addEventListener('open', () => {
    const again = state.everConnected;
    state.everConnected = true;
    state.backoff = 1000;
    setConn('live', 'Live');
    // Whatever happened while we were away: fetch it once, the stream covers the rest.
    if (again) resync();
  });
  const on = (name, handler) => source.addEventListener(name, (event) => {
    let data;
    try { data = JSON.parse(event.data); } catch (_) { return; }
    handler(data);
  });
  on('decision', onDecision);
  on('approval', (info) => { addApproval(info); });
  on('resolution', (info) => { removeApproval(info.id, info); });
  on('reload', (result) => { showReload(result); loadStatus(); });
  on('lagged', () => resync());
  source.addEventListener('error', () => {
    if (state.source !== source) return;
    source.close();
    state.source = null;
    const wait = state.backoff;
    state.backoff = Math.min(state.backoff * 2, 30000);
    setConn('reconnecting', `Reconnecting in ${Math.round(wait / 1000)}s…`);
    // EventSource hides the status code: ask once whether the token is still good.
    request('GET', '/v1/status').catch(() => {});
    state.reconnectTimer = setTimeout(() => { if (state.token) connectStream(); }, wait);
  });
}

// ---------------------------------------------------------------------------
// The feed

function matchesFilters(ev) {
  const f = state.filters;
  if (f.agent && ev.agent !== f.agent) return false;
  if (f.session && ev.session !== f.session) return false;
  // The ask filter also finds asks a person (or the timeout) resolved: they are stored
  // with their final decision and an `approval`, as the server's filter does.
  const resolvedAsk = f.decision === 'ask' && ev.approval;
  if (f.decision && !resolvedAsk && decisionKey(ev.decision) !== f.decision && ev.decision !== f.decision) return false;
  if (f.q) {
    const q = f.q.toLowerCase();
    if (!String(ev.command || '').toLowerCase().includes(q) &&
        !String(ev.message || '').toLowerCase().includes(q)) return false;
  }
  return true;
}

function rowFor(ev, fresh) {
  const meta = el('div', { class: 'meta' },
    el('span', { class: 'agent', title: 'agent', text: visible(ev.agent) || '—' }),
    el('span', { class: 'sep', 'aria-hidden': 'true', text: '·' }),
    el('span', { class: 'session', title: 'session', text: visible(ev.session) || '—' }));
  if (ev.policy) {
    meta.append(el('span', { class: 'sep', 'aria-hidden': 'true', text: '·' }),
      el('span', { class: 'policy', title: 'matched policy', text: visible(ev.policy) }));
  }
  if (ev.message) meta.append(el('span', { class: 'message', text: visible(ev.message) }));
  if (ev.approval) {
    const how = ev.approval.resolved_by === 'timeout'
      ? 'ask timed out'
      : `ask ${ev.approval.approved ? 'approved' : 'denied'} by ${visible(ev.approval.resolved_by)}`;
    meta.append(el('span', { class: 'approval-note', text: how }));
  }
  const row = el('li', { class: `row${fresh ? ' fresh' : ''}`, 'data-id': ev.id, 'data-decision': wouldBe(ev) ? 'would' : decisionKey(ev.decision), tabindex: '0' },
    el('time', { class: 'ts', datetime: ev.ts, title: ev.ts, text: timeText(ev.ts) }),
    eventBadge(ev),
    el('div', { class: 'body' },
      ev.decision === 'unchecked'
        ? el('span', { class: 'command unchecked-report', text: `${number(ev.unchecked || 1)} exec(s) ran unchecked${ev.pid ? ` in pid ${ev.pid}` : ''}` })
        : el('code', { class: 'command', text: visible(ev.command) }),
      meta));
  row.addEventListener('click', (event) => {
    if (window.getSelection && String(window.getSelection()).length > 0) return;
    if (event.target.closest('.details')) return;
    toggleDetails(row, ev);
  });
  row.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') toggleDetails(row, ev);
  });
  return row;
}

function toggleDetails(row, ev) {
  const open = row.querySelector('.details');
  if (open) {
    open.remove();
    row.classList.remove('open');
    return;
  }
  const dl = el('dl', { class: 'details' });
  const add = (term, value) => {
    if (value === undefined || value === null || value === '') return;
    dl.append(el('dt', { text: term }), el('dd', { text: value }));
  };
  add('id', ev.id);
  add('time', ev.ts);
  add('tool', ev.tool);
  add('via', ev.via);
  add('exe', ev.exe);
  add('argv', Array.isArray(ev.argv) && ev.argv.length ? JSON.stringify(ev.argv) : '');
  add('cwd', ev.cwd);
  add('pid', ev.pid);
  add('mode', ev.mode);
  add('ran unchecked', ev.unchecked);
  add('quiet', ev.quiet ? 'yes: a known-benign allow, shown only with "quiet" ticked' : '');
  add('evaluation', ev.eval_us !== undefined ? `${ev.eval_us} µs` : '');
  if (ev.approval) {
    const a = ev.approval;
    add('approval', `${a.approved ? 'approved' : 'denied'} by ${a.resolved_by}${a.message ? `: ${a.message}` : ''} (${a.resolved_at})`);
  }
  row.querySelector('.body').append(dl);
  row.classList.add('open');
}

function noteAgentSession(ev) {
  addOption('f-agent', state.agents, ev.agent);
  noteSession(ev.session, ev.id);
}

// The session filter: most recent first, at most SESSION_CAP of them, narrowed by the
// "Find session" box (which searches every session seen, not only the listed ones).
const SESSION_CAP = 50;

function noteSession(session, id) {
  if (!session || !id) return;
  const newest = state.sessions.get(session);
  if (newest && newest >= id) return;
  state.sessions.set(session, id);
  // Redrawn only when the order changes: a session already on top stays there.
  const select = $('f-session');
  const top = select.options.length > 1 ? select.options[1].value : null;
  if (top !== session || !newest) renderSessions();
}

function renderSessions() {
  const select = $('f-session');
  const chosen = select.value;
  const needle = $('f-session-q').value.trim().toLowerCase();
  const all = [...state.sessions.entries()].filter(([s]) => !needle || s.toLowerCase().includes(needle));
  all.sort((a, b) => (a[1] < b[1] ? 1 : a[1] > b[1] ? -1 : 0));
  const shown = all.slice(0, SESSION_CAP).map(([s]) => s);
  // The session being filtered on stays selectable even when the list would drop it.
  // (at the end: the order stays most recent first).
  if (chosen && !shown.includes(chosen)) shown.push(chosen);
  const first = select.options[0];
  first.textContent = needle ? `All sessions (${number(all.length)} match)` : 'All sessions';
  const options = shown.map((value) => el('option', { value, text: visible(value) }));
  if (all.length > SESSION_CAP) {
    options.push(el('option', { value: '', disabled: 'disabled', text: `… ${number(all.length - SESSION_CAP)} older: type to find` }));
  }
  select.replaceChildren(first, ...options);
  select.value = chosen;
}

function addOption(selectId, set, value) {
  if (!value || set.has(value)) return;
  set.add(value);
  const select = $(selectId);
  const option = el('option', { value, text: value });
  // Keep options sorted after the "All" entry.
  let before = null;
  for (let i = 1; i < select.options.length; i++) {
    if (select.options[i].value.localeCompare(value) > 0) { before = select.options[i]; break; }
  }
  select.insertBefore(option, before);
}

function feedStatus(text) {
  $('feed-status').textContent = text;
}

function updateFeedStatus() {
  const count = $('feed').children.length;
  if (state.loading) feedStatus('Loading…');
  else if (count === 0) feedStatus(anyFilter() ? 'No decisions match these filters.' : 'No decisions yet. They appear here the moment an agent runs a command.');
  else if (state.exhausted) feedStatus(`${number(count)} shown · the beginning of the trail`);
  else feedStatus(`${number(count)} shown · scroll for older`);
}

function anyFilter() {
  const f = state.filters;
  return Boolean(f.agent || f.session || f.decision || f.q);
}

/** Puts live events on top, keeping what the reader is looking at in place. */
function prependEvents(events, fresh) {
  const list = $('feed');
  const scroller = $('feed-scroll');
  const keep = scroller.scrollTop > 4;
  const before = scroller.scrollHeight;
  const fragment = document.createDocumentFragment();
  // `events` is oldest first; the newest ends on top.
  for (let i = events.length - 1; i >= 0; i--) {
    const ev = events[i];
    state.seen.add(ev.id);
    if (!state.newestId || ev.id > state.newestId) state.newestId = ev.id;
    if (!state.oldestId) state.oldestId = ev.id;
    fragment.append(rowFor(ev, fresh));
  }
  list.prepend(fragment);
  if (keep) scroller.scrollTop += scroller.scrollHeight - before;
  while (list.children.length > FEED_CAP) {
    const last = list.lastElementChild;
    state.seen.delete(last.dataset.id);
    last.remove();
    state.oldestId = list.lastElementChild ? list.lastElementChild.dataset.id : null;
    state.exhausted = false;
  }
  updateFeedStatus();
}

function onDecision(ev) {
  if (!ev || !ev.id) return;
  noteAgentSession(ev);
  countLive(ev);
  if (state.seen.has(ev.id) || !matchesFilters(ev)) return;
  if (state.paused) {
    if (!state.buffered.some((b) => b.id === ev.id)) state.buffered.push(ev);
    updatePauseButton();
    return;
  }
  prependEvents([ev], true);
}

async function loadPage() {
  if (state.loading || state.exhausted) return;
  state.loading = true;
  const generation = state.feedGeneration;
  updateFeedStatus();
  try {
    const f = state.filters;
    const data = await api('GET', `/v1/audit/events${query({
      agent: f.agent, session: f.session, decision: f.decision, q: f.q,
      before: state.oldestId || '', limit: PAGE_SIZE, quiet: f.quiet ? '' : 'false',
    })}`);
    if (generation !== state.feedGeneration) return;
    const events = (data && data.events) || [];
    const list = $('feed');
    const fragment = document.createDocumentFragment();
    for (const ev of events) {
      noteAgentSession(ev);
      if (state.seen.has(ev.id)) continue;
      state.seen.add(ev.id);
      if (!state.newestId || ev.id > state.newestId) state.newestId = ev.id;
      fragment.append(rowFor(ev, false));
    }
    list.append(fragment);
    if (events.length) state.oldestId = events[events.length - 1].id;
    if (events.length < PAGE_SIZE) state.exhausted = true;
  } catch (error) {
    if (!(error instanceof AuthError)) toast(`Loading history failed: ${error.message}`, 'error');
  } finally {
    if (generation === state.feedGeneration) {
      state.loading = false;
      updateFeedStatus();
      // A short first page on a tall screen: keep filling while the end is visible.
      if (!state.exhausted && sentinelVisible()) setTimeout(loadPage, 0);
    }
  }
}

function sentinelVisible() {
  const scroller = $('feed-scroll');
  return scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 200;
}

function resetFeed() {
  state.feedGeneration++;
  state.loading = false;
  state.seen.clear();
  state.oldestId = null;
  state.newestId = null;
  state.exhausted = false;
  state.buffered = [];
  $('feed').replaceChildren();
  $('feed-scroll').scrollTop = 0;
  updatePauseButton();
  loadPage();
}

/** After a reconnect or a lag: put the events we missed on top of the feed. */
async function resync() {
  loadApprovals();
  loadStats();
  loadStatus();
  loadChart();
  if (!state.newestId) { resetFeed(); return; }
  try {
    const f = state.filters;
    const data = await api('GET', `/v1/audit/events${query({
      agent: f.agent, session: f.session, decision: f.decision, q: f.q, limit: PAGE_SIZE,
      quiet: f.quiet ? '' : 'false',
    })}`);
    const missed = ((data && data.events) || []).filter((ev) => !state.seen.has(ev.id) && ev.id > state.newestId);
    missed.forEach(noteAgentSession);
    if (missed.length) prependEvents(missed.reverse(), true);
  } catch (_) { /* the next reconnect tries again */ }
}

function updatePauseButton() {
  const button = $('pause');
  button.setAttribute('aria-pressed', String(state.paused));
  button.classList.toggle('active', state.paused);
  if (!state.paused) button.textContent = 'Pause';
  else button.textContent = state.buffered.length ? `Resume (${number(state.buffered.length)} new)` : 'Resume';
}

$('pause').addEventListener('click', () => {
  state.paused = !state.paused;
  if (!state.paused && state.buffered.length) {
    const events = state.buffered.filter((ev) => !state.seen.has(ev.id) && matchesFilters(ev));
    state.buffered = [];
    prependEvents(events, true);
  }
  updatePauseButton();
});

for (const id of ['f-agent', 'f-session', 'f-decision']) {
  $(id).addEventListener('change', () => {
    state.filters.agent = $('f-agent').value;
    state.filters.session = $('f-session').value;
    state.filters.decision = $('f-decision').value;
    resetFeed();
  });
}

$('f-quiet').addEventListener('change', () => {
  state.filters.quiet = $('f-quiet').checked;
  connectStream();
  resetFeed();
});

$('f-session-q').addEventListener('input', renderSessions);

let searchTimer = null;
$('f-q').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    const q = $('f-q').value.trim();
    if (q === state.filters.q) return;
    state.filters.q = q;
    resetFeed();
  }, 250);
});

$('feed-scroll').addEventListener('scroll', () => {
  if (sentinelVisible()) loadPage();
}, { passive: true });

// ---------------------------------------------------------------------------
// Totals (as `rampart audit stats`) and the last-hour chart

const COUNT_FIELDS = [
  ['total', 'Total', ''],
  ['allowed', 'Allowed', 'allow'],
  ['denied', 'Denied', 'deny'],
  ['asked', 'Asked', 'ask'],
  ['logged', 'Logged', 'log'],
  ['unchecked', 'Unchecked', 'unchecked'],
];

function emptyCounts() {
  return { total: 0, allowed: 0, denied: 0, logged: 0, asked: 0, unchecked: 0 };
}

function addCount(counts, ev) {
  // A report of unchecked execs is no decision: it adds to Unchecked only.
  if (ev.decision === 'unchecked') {
    counts.unchecked = (counts.unchecked || 0) + Number(ev.unchecked || 1);
    return;
  }
  counts.total += 1;
  // As the server counts: allowed + denied + logged = total; an ask refused at once
  // (nobody to ask) is denied, allowed in monitor mode.
  const key = ev.decision === 'ask' ? (ev.mode === 'monitor' ? 'allow' : 'deny') : decisionKey(ev.decision);
  if (key === 'allow') counts.allowed += 1;
  else if (key === 'deny') counts.denied += 1;
  else if (key === 'log') counts.logged += 1;
  if (ev.decision === 'ask' || ev.approval) counts.asked += 1;
}

async function loadStats() {
  try {
    const stats = await api('GET', `/v1/audit/stats${query({ since: state.statsSince })}`);
    state.stats = stats;
    for (const agent of Object.keys(stats.agents || {})) addOption('f-agent', state.agents, agent);
    queueRender();
  } catch (error) {
    if (!(error instanceof AuthError)) toast(`Loading totals failed: ${error.message}`, 'error');
  }
}

function countLive(ev) {
  if (state.stats) {
    addCount(state.stats.totals, ev);
    const agents = state.stats.agents || (state.stats.agents = {});
    addCount(agents[ev.agent] || (agents[ev.agent] = emptyCounts()), ev);
  }
  addToChart(ev);
  queueRender();
}

function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    renderStats();
    renderChart();
  });
}

// A tile shows its whole number: long ones get a smaller size (and may still wrap at a
// narrow width), never an ellipsis.
function tileValue(text) {
  const size = text.length > 9 ? 'xl' : text.length > 6 ? 'l' : '';
  return el('span', { class: 'tile-value', 'data-size': size, text });
}

function renderStats() {
  const stats = state.stats;
  if (!stats) return;
  const tiles = COUNT_FIELDS.map(([field, label, key]) => el('div', { class: `tile${key ? ` t-${key}` : ''}`, 'data-field': field },
    el('span', { class: 'tile-label' },
      key ? el('span', { class: 'icon', 'aria-hidden': 'true', text: DECISIONS[key].icon }) : null,
      label),
    tileValue(number(stats.totals[field]))));
  $('totals').replaceChildren(...tiles);
  const rows = Object.entries(stats.agents || {})
    .sort((a, b) => b[1].total - a[1].total || a[0].localeCompare(b[0]))
    .map(([agent, c]) => el('tr', null,
      el('th', { scope: 'row', text: agent, title: agent }),
      el('td', { text: number(c.total) }),
      el('td', { class: c.allowed ? 'n-allow' : 'zero', text: number(c.allowed) }),
      el('td', { class: c.denied ? 'n-deny' : 'zero', text: number(c.denied) }),
      el('td', { class: c.asked ? 'n-ask' : 'zero', text: number(c.asked) }),
      el('td', { class: c.logged ? 'n-log' : 'zero', text: number(c.logged) })));
  if (!rows.length) rows.push(el('tr', null, el('td', { colspan: '6', class: 'empty', text: 'No decisions in this period.' })));
  $('agents-body').replaceChildren(...rows);
}

$('stats-since').addEventListener('change', () => {
  state.statsSince = $('stats-since').value;
  loadStats();
});

const minuteOf = (ts) => Math.floor(new Date(ts).getTime() / 60000);

function addToChart(ev) {
  if (state.chartSeen.has(ev.id) || ev.decision === 'unchecked') return;
  state.chartSeen.add(ev.id);
  const minute = minuteOf(ev.ts);
  if (Number.isNaN(minute)) return;
  const bucket = state.minutes.get(minute) || { allow: 0, deny: 0, ask: 0, log: 0 };
  bucket[decisionKey(ev.decision)] += 1;
  state.minutes.set(minute, bucket);
}

async function loadChart() {
  try {
    const data = await api('GET', `/v1/audit/events${query({ since: '1h', limit: 10000 })}`);
    for (const ev of (data && data.events) || []) addToChart(ev);
    queueRender();
  } catch (_) { /* the chart stays as it was */ }
}

function renderChart() {
  const chart = $('chart');
  const now = Math.floor(Date.now() / 60000);
  const width = 320;
  const height = 96;
  const slot = width / 60;
  const buckets = [];
  let max = 0;
  let total = 0;
  for (let i = 59; i >= 0; i--) {
    const b = state.minutes.get(now - i) || { allow: 0, deny: 0, ask: 0, log: 0 };
    const sum = b.allow + b.deny + b.ask + b.log;
    max = Math.max(max, sum);
    total += sum;
    buckets.push([now - i, b, sum]);
  }
  // Forget minutes that scrolled out of the hour.
  for (const minute of state.minutes.keys()) if (minute < now - 60) state.minutes.delete(minute);
  const nodes = [];
  for (const y of [0.5, 1]) {
    nodes.push(svg('line', { class: 'grid', x1: 0, x2: width, y1: height - (height - 4) * y, y2: height - (height - 4) * y }));
  }
  buckets.forEach(([minute, b, sum], index) => {
    if (!sum) return;
    const group = svg('g', {});
    const title = svg('title', {});
    const at = new Date(minute * 60000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
    title.textContent = `${at}: ${sum} (✓ ${b.allow}, ✕ ${b.deny}, ? ${b.ask}, ● ${b.log})`;
    group.append(title);
    let y = height;
    for (const key of ['allow', 'log', 'ask', 'deny']) {
      if (!b[key]) continue;
      const h = Math.max(1.5, (b[key] / max) * (height - 4));
      y -= h;
      group.append(svg('rect', { class: `bar b-${key}`, x: index * slot + 0.6, y, width: slot - 1.2, height: h, rx: 0.8 }));
    }
    nodes.push(group);
  });
  chart.replaceChildren(...nodes);
  $('chart-total').classList.remove('loading');
  $('chart-total').textContent = total ? `${number(total)} · peak ${number(max)}/min` : 'quiet';
}

// ---------------------------------------------------------------------------
// Pending approvals

function updatePendingCount() {
  const n = state.approvals.size;
  $('pending-count').textContent = String(n);
  $('approvals-panel').classList.toggle('has-pending', n > 0);
  $('approvals-empty').hidden = n > 0;
  document.title = n ? `(${n}) Rampart` : 'Rampart';
}

function timeLeft(info) {
  return (new Date(info.expires_at).getTime() - Date.now()) / 1000;
}

function addApproval(info) {
  if (!info || info.status !== 'pending' || state.approvals.has(info.id)) return;
  const note = el('input', { type: 'text', class: 'note', placeholder: 'Optional message', 'aria-label': 'Message recorded with the decision', spellcheck: 'false' });
  const approve = el('button', { type: 'button', class: 'approve', text: '✓ Approve' });
  const forSession = el('button', { type: 'button', class: 'approve session-wide', text: '✓ For this session', title: 'Approve, and the same command in this session from now on' });
  const deny = el('button', { type: 'button', class: 'deny', text: '✕ Deny' });
  const left = el('span', { class: 'left' });
  const meta = el('div', { class: 'meta' },
    el('span', { class: 'agent', text: visible(info.agent) || '—' }),
    el('span', { class: 'sep', 'aria-hidden': 'true', text: '·' }),
    el('span', { class: 'session', text: visible(info.session) || '—' }),
    el('span', { class: 'sep', 'aria-hidden': 'true', text: '·' }),
    el('time', { datetime: info.created_at, title: info.created_at, text: timeText(info.created_at) }));
  const card = el('li', { class: 'approval', 'data-id': info.id },
    el('div', { class: 'approval-top' }, badge('ask'), el('code', { class: 'command', text: visible(info.command) }), left),
    meta,
    info.message || (info.matched_policies || []).length
      ? el('div', { class: 'why' },
        (info.matched_policies || []).length ? el('span', { class: 'policy', text: info.matched_policies.join(', ') }) : null,
        info.message ? el('span', { class: 'message', text: visible(info.message) }) : null)
      : null,
    el('div', { class: 'actions' }, note, approve, forSession, deny));
  const resolve = async (approved, scope) => {
    approve.disabled = true;
    forSession.disabled = true;
    deny.disabled = true;
    try {
      const message = note.value.trim();
      const r = await request('POST', `/v1/approvals/${encodeURIComponent(info.id)}/resolve`, {
        approved, message: message || undefined, resolved_by: 'dashboard', scope,
      });
      if (r.status === 410 || r.status === 404) {
        toast((r.data && r.data.error) || 'Already resolved.', 'info');
        removeApproval(info.id);
      } else if (!r.ok) {
        throw new Error((r.data && r.data.error) || `HTTP ${r.status}`);
      } else {
        toast(`${approved ? 'Approved' : 'Denied'}: ${visible(info.command)}`, approved ? 'allow' : 'deny');
        removeApproval(info.id);
      }
    } catch (error) {
      if (error instanceof AuthError) return;
      approve.disabled = false;
      forSession.disabled = false;
      deny.disabled = false;
      toast(`Could not resolve: ${error.message}`, 'error');
    }
  };
  approve.addEventListener('click', () => resolve(true));
  forSession.addEventListener('click', () => resolve(true, 'session'));
  deny.addEventListener('click', () => resolve(false));
  note.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') resolve(true);
  });
  state.approvals.set(info.id, { info, card, left });
  // Oldest first: the one closest to timing out is on top.
  $('approvals').append(card);
  tickApproval(state.approvals.get(info.id));
  updatePendingCount();
}

function removeApproval(id, info) {
  const entry = state.approvals.get(id);
  if (!entry) return;
  state.approvals.delete(id);
  entry.card.remove();
  updatePendingCount();
  if (info && info.status === 'expired') toast(`Timed out (denied): ${visible(info.command)}`, 'deny');
}

function tickApproval(entry) {
  const seconds = timeLeft(entry.info);
  entry.left.textContent = seconds > 0 ? `${duration(seconds)} left` : 'timing out…';
  entry.left.classList.toggle('urgent', seconds < 20);
}

async function loadApprovals() {
  try {
    const data = await api('GET', '/v1/approvals');
    const list = (data && data.approvals) || [];
    const ids = new Set(list.map((a) => a.id));
    for (const id of [...state.approvals.keys()]) if (!ids.has(id)) removeApproval(id);
    list.sort((a, b) => a.created_at.localeCompare(b.created_at)).forEach(addApproval);
    // "Nothing is waiting" only once the server said so (until then: "Loading…").
    const empty = $('approvals-empty');
    empty.textContent = 'Nothing is waiting for a decision.';
    empty.classList.remove('loading');
  } catch (error) {
    if (!(error instanceof AuthError)) toast(`Loading approvals failed: ${error.message}`, 'error');
  }
}

// ---------------------------------------------------------------------------
// Policy: status, reload, try a command

async function loadStatus() {
  let status;
  try {
    status = await api('GET', '/v1/status');
  } catch (error) {
    return null;
  }
  renderStatus(status);
  return status;
}

function renderStatus(s) {
  $('server-meta').replaceChildren(
    el('span', { class: `mode mode-${s.mode}`, text: s.mode }),
    el('span', { text: `v${s.version}` }),
    el('span', { title: 'uptime', text: `up ${duration(s.uptime_secs)}` }));
  $('policy-source').classList.remove('loading');
  $('policy-source').replaceChildren(
    el('span', { text: policiesAndRules(s.policies, s.rules) }),
    el('span', { class: 'muted', text: ` from ${s.policy_source}` }));
  const files = (s.policy_files || []).map((f) => el('li', { title: f.path },
    el('span', { class: 'file', text: f.path.split('/').pop() }),
    el('span', { class: 'muted', text: `${number(f.policies)} policies · ${number(f.rules)} rules` })));
  $('policy-files').replaceChildren(...files);
  // Issue 17: the policy repository's commit and each audit export's lag, one line each.
  const team = [];
  if (s.policy_repo) {
    const r = s.policy_repo;
    team.push(el('span', { text: `Repository ${r.source} at ${r.adopted || '(none adopted yet)'}` +
      (r.refused ? `; refused ${r.refused}: ${r.refused_reason || ''}` : '') +
      (r.fetch_error ? `; fetch failing: ${r.fetch_error}` : '') }));
  }
  for (const x of s.exports || []) {
    if (team.length) team.push(el('br'));
    team.push(el('span', { text: `Export ${x.url}: ${number(x.delivered)} delivered, lag ${number(x.lag)}` +
      (x.last_error ? `, last error: ${x.last_error}` : '') }));
  }
  $('team-status').hidden = team.length === 0;
  $('team-status').replaceChildren(...team);
  if (s.last_reload_error && $('reload-result').hidden) {
    showReload({ ok: false, error: s.last_reload_error, policies: s.policies, rules: s.rules });
  }
}

function showReload(result) {
  const box = $('reload-result');
  box.hidden = false;
  box.dataset.ok = String(Boolean(result.ok));
  if (result.ok) {
    box.replaceChildren(el('div', null, el('span', { class: 'icon ok', 'aria-hidden': 'true', text: '✓ ' }),
      `Reloaded: ${policiesAndRules(result.policies, result.rules)}.`));
  } else {
    box.replaceChildren(
      el('div', null, el('span', { class: 'icon bad', 'aria-hidden': 'true', text: '✕ ' }), 'Reload failed; the previous policy stays in force.'),
      el('pre', { class: 'error-text', text: result.error || 'unknown error' }));
  }
}

$('reload').addEventListener('click', async () => {
  const button = $('reload');
  button.disabled = true;
  try {
    const r = await request('POST', '/v1/policy/reload');
    if (r.data && typeof r.data.ok === 'boolean') showReload(r.data);
    else showReload({ ok: false, error: (r.data && r.data.error) || `HTTP ${r.status}` });
    loadStatus();
  } catch (error) {
    if (!(error instanceof AuthError)) showReload({ ok: false, error: error.message });
  } finally {
    button.disabled = false;
  }
});

$('try-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const command = $('try-input').value;
  if (!command.trim()) return;
  const box = $('try-result');
  try {
    const r = await api('POST', '/v1/test', { command });
    const parts = [el('div', { class: 'try-line' }, badge(r.decision),
      el('span', { class: 'policy', text: (r.matched_policies || []).join(', ') || 'no rule matched (default action)' }))];
    if (r.message) parts.push(el('div', { class: 'message', text: r.message }));
    const facts = [];
    if (r.rule) facts.push(`rule ${r.rule}`);
    facts.push(`${r.eval_duration_us} µs`);
    parts.push(el('div', { class: 'muted small', text: facts.join(' · ') }));
    if ((r.pieces || []).length > 1) {
      parts.push(el('div', { class: 'muted small' }, 'pieces: ',
        ...r.pieces.map((p) => el('code', { class: 'piece', text: p }))));
    }
    box.replaceChildren(...parts);
  } catch (error) {
    if (error instanceof AuthError) return;
    box.replaceChildren(el('div', { class: 'error-text', text: error.message }));
  }
  box.hidden = false;
});

// ---------------------------------------------------------------------------
// Start

let statusTimer = null;
let startAttempt = 0;

async function start() {
  state.token = sessionStorage.getItem(TOKEN_KEY);
  if (!state.token) {
    showLogin('');
    return;
  }
  setConn('connecting', 'Connecting…');
  let status;
  try {
    const r = await request('GET', '/v1/status');
    if (!r.ok) throw new Error((r.data && r.data.error) || `HTTP ${r.status}`);
    status = r.data;
  } catch (error) {
    if (error instanceof AuthError) return;
    // The server is down or restarting: say so and try again.
    const wait = Math.min(1000 * 2 ** startAttempt++, 30000);
    setConn('offline', `Server unreachable, retrying in ${Math.round(wait / 1000)}s`);
    setTimeout(start, wait);
    return;
  }
  startAttempt = 0;
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  renderStatus(status);
  updatePendingCount();
  // Stream first, history second: anything in between is de-duplicated by id.
  connectStream();
  resetFeed();
  loadApprovals();
  loadStats();
  loadChart();
  clearInterval(statusTimer);
  statusTimer = setInterval(() => { if (state.token) loadStatus(); }, 30000);
}

setInterval(() => {
  for (const entry of state.approvals.values()) tickApproval(entry);
}, 1000);
// The chart's hour moves on even when nothing happens.
setInterval(queueRender, 15000);

takeTokenFromUrl();
start();
