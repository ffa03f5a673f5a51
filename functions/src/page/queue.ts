/**
 * The queue page (`GET /queue` on the action function): one self-contained HTML document whose
 * script polls ACI (QueueInfo GetStatus, Progress, QueueStatus) on the same endpoint and draws
 * the actions live, with Stop, Cancel, Pause and Resume buttons that send ACI requests. Nothing
 * is built or fetched from elsewhere; the page's script is pinned by its hash in the CSP.
 */
import { createHash } from 'node:crypto';

const SCRIPT = `
'use strict';
const base = new URL('./', location.href);
const $ = (id) => document.getElementById(id);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
const list = (v) => (Array.isArray(v) ? v : v === undefined || v === null || v === '' ? [] : [v]);
async function aci(params, post) {
  const q = new URLSearchParams({ ...params, ResponseFormat: 'simplejson' });
  const r = await fetch(post ? base : base + '?' + q, {
    method: post ? 'POST' : 'GET',
    headers: post ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {},
    body: post ? q.toString() : undefined,
    credentials: 'same-origin',
    signal: AbortSignal.timeout(20000),
  });
  const j = await r.json().catch(() => ({}));
  const rd = (j.autnresponse || {}).responsedata || {};
  if ((j.autnresponse || {}).response !== 'SUCCESS') throw new Error((rd.error && (rd.error.errorid + ': ' + rd.error.errorstring)) || 'HTTP ' + r.status);
  return rd;
}
const queue = (verb, extra, post) => aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: verb, ...(extra || {}) }, post);
function say(msg, bad) {
  const m = $('message');
  m.textContent = msg;
  m.className = bad ? 'bad' : '';
}
async function act(verb, token) {
  try {
    const rd = await queue(verb, token ? { Token: token } : {}, true);
    say(verb + (token ? ' ' + token : '') + ': ' + (rd.status || (rd.paused === 'true' ? 'paused' : 'running')));
  } catch (e) {
    say(verb + ': ' + e.message, true);
  }
  refresh();
}
function button(label, onclick) {
  const b = el('button', { type: 'button', 'data-verb': label }, label);
  b.addEventListener('click', onclick);
  return b;
}
function counts(a) {
  return list((a.documentcounts || {}).documentcount)
    .map((d) => d['@task'] + ': ' + Object.entries(d).filter(([k]) => k !== '@task').map(([k, v]) => k.slice(1) + ' ' + v).join(', '))
    .join('; ');
}
function mailboxes(stages) {
  const box = el('div', { class: 'mailboxes' });
  for (const s of stages) {
    const max = Number(s['@maximum'] || 0);
    const done = Number(s['@progress'] || 0);
    const bar = el('progress', { max: String(max || 1), value: String(max ? Math.min(done, max) : 0) });
    box.append(el('div', { class: 'mailbox', 'data-mailbox': s['@title'] }, el('span', { class: 'who' }, s['@task'] + '/' + s['@title']), bar,
      el('span', { class: 'num' }, done + (max ? ' / ' + max : '') + ' messages · ' + s['@status'])));
  }
  return box;
}
let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const [qs, st] = await Promise.all([queue('QueueStatus'), queue('GetStatus', { MaxResults: $('max').value || '25' })]);
    const q = qs.queue || {};
    $('queue').textContent = 'queue fetch: ' + (q['@paused'] === 'true' ? 'PAUSED' : 'running') + ' · pending ' + q.pending + ' · running ' + q.running + ' · completed ' + q.completed;
    document.body.dataset.paused = q['@paused'];
    const actions = list((st.actions || {}).action);
    // An open action's figures come from Progress, which reads its mailboxes, so that the action's
    // total and its mailboxes' bars agree (GetStatus's list reads totals that may trail a second).
    const open = (a) => a.status === 'Processing' || a.status === 'Queued';
    const live = await Promise.all(actions.map((a) => (open(a) ? queue('Progress', { Token: a.token }).then((p) => p.progress || {}).catch(() => null) : Promise.resolve(null))));
    // Its counts too: GetStatus with its token sums its mailboxes now.
    const exact = await Promise.all(actions.map((a) => (open(a) ? queue('GetStatus', { Token: a.token }).then((r) => list((r.actions || {}).action)[0] || a).catch(() => a) : Promise.resolve(a))));
    const rows = actions.map((_, i) => {
      const a = exact[i];
      const stages = live[i] ? list(live[i].stage) : null;
      const p = live[i] ? { percent: live[i].percent, messages: stages.reduce((n, s) => n + Number(s['@progress'] || 0), 0) } : a.progress || {};
      // Every task section of the action has a documentcount, whatever its end.
      const sections = list((a.documentcounts || {}).documentcount).map((d) => d['@task']);
      const tr = el('tr', { 'data-token': a.token, 'data-status': a.status });
      const ops = el('td', { class: 'ops' });
      if (a.status === 'Processing') ops.append(button('Stop', () => act('Stop', a.token)));
      if (a.status === 'Queued') ops.append(button('Cancel', () => act('Cancel', a.token)));
      const prog = el('td', { class: 'progress' }, el('div', { class: 'total' }, el('progress', { max: '100', value: String(p.percent || 0) }), ' ' + (p.percent || 0) + '% · ' + (p.messages || 0) + ' messages'));
      if (stages) prog.append(mailboxes(stages));
      tr.append(
        el('td', { class: 'token' }, a.token),
        el('td', { class: 'status s-' + a.status }, a.status + (a.stop_requested === 'true' && a.status === 'Processing' ? ' (stopping)' : '')),
        el('td', { class: 'action' }, (a.fetchaction || '') + ' ' + sections.join(',')),
        el('td', {}, a.queued_time || ''),
        prog,
        el('td', { class: 'counts' }, counts(a)),
        el('td', { class: 'error' }, a.error || ''),
        ops,
      );
      return tr;
    });
    $('rows').replaceChildren(...rows);
    $('empty').hidden = rows.length > 0;
    // In UTC, as the queued times beside it.
    $('updated').textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
  } catch (e) {
    say('refresh: ' + e.message, true);
  } finally {
    busy = false;
  }
}
$('submit').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const rd = await aci({ action: 'Fetch', FetchAction: $('fetchaction').value, TaskSections: $('tasks').value }, true);
    say('submitted ' + rd.token);
  } catch (e) {
    say('Fetch: ' + e.message, true);
  }
  refresh();
});
$('pause').addEventListener('click', () => act('Pause'));
$('resume').addEventListener('click', () => act('Resume'));
refresh();
setInterval(refresh, 1000);
`;

const STYLE = `
body { font: 14px system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }
h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
form, .bar { display: flex; gap: .5rem; align-items: center; margin: .5rem 0; flex-wrap: wrap; }
input, select, button { font: inherit; padding: .25rem .5rem; }
table { border-collapse: collapse; width: 100%; margin-top: .75rem; }
th, td { border-bottom: 1px solid #d0d7de; padding: .4rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.token { font-family: ui-monospace, monospace; font-size: 12px; }
.s-Finished { color: #1a7f37; } .s-Error { color: #cf222e; } .s-Stopped, .s-Cancelled { color: #9a6700; } .s-Processing { color: #0969da; }
progress { width: 12rem; vertical-align: middle; }
.mailbox { font-size: 12px; margin-top: .25rem; white-space: nowrap; } .mailbox .who { display: block; }
.mailbox progress { width: 8rem; margin: 0 .4rem 0 0; }
.error { color: #cf222e; max-width: 20rem; } .counts { font-size: 12px; max-width: 16rem; }
#message.bad { color: #cf222e; } #updated { color: #656d76; font-size: 12px; }
`;

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gmail connector: queue</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Gmail connector: the fetch queue</h1>
<div class="bar"><span id="queue">…</span>
<button type="button" id="pause">Pause</button><button type="button" id="resume">Resume</button>
<span id="updated"></span></div>
<form id="submit">
<select id="fetchaction"><option>Synchronize</option><option>Identifiers</option></select>
<input id="tasks" name="tasks" placeholder="TaskSections, e.g. DEMO" required>
<button type="submit">Submit</button>
<label>show <input id="max" type="number" min="1" max="1000" value="25" style="width:5rem"> actions</label>
</form>
<div id="message" role="status"></div>
<table>
<thead><tr><th>token</th><th>status</th><th>action</th><th>queued (UTC)</th><th>progress</th><th>counts</th><th>error</th><th></th></tr></thead>
<tbody id="rows"></tbody>
</table>
<p id="empty" hidden>No actions yet.</p>
<script>${SCRIPT}</script>
</body>
</html>
`;

const scriptHash = createHash('sha256').update(SCRIPT).digest('base64');

/** The page and the headers it is served with. */
export const QUEUE_PAGE = {
  body: HTML,
  headers: {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    // Only this page's own script and style run; it talks to its own origin only and cannot be framed.
    'Content-Security-Policy': `default-src 'none'; script-src 'sha256-${scriptHash}'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  },
} as const;

/** Whether a request path names the queue page: `/queue`, or `/<prefix>/queue`, without `=`. */
export function isQueuePage(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  return !path.includes('=') && /(^|\/)queue\/?$/.test(path);
}
