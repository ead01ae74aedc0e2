/**
 * The console's pages, rendered on the server with preact (htm templates). The renderer escapes every
 * text and attribute value; nothing from a message is ever put into a URL other than through
 * `encodeURIComponent` on our own paths, and the pages carry no script at all (CSP `script-src 'none'`).
 */
import { type AuditEntry, type ConsoleJob, PARKING_HISTORY_HEADER, REPLAY_COUNT_HEADER } from '@switchboard/core';
import { html as htmlTemplate } from 'htm/preact';
import type { VNode } from 'preact';
import { render } from 'preact-render-to-string';
import type { ConsoleLetter, FingerprintGroup, QueueView } from './inventory.js';
import { age, clip, iso, shownHeaders, shownPayload } from './present.js';

const html = htmlTemplate as (strings: TemplateStringsArray, ...values: unknown[]) => VNode;

export interface PageContext {
  readonly base: string;
  readonly actor: string;
  readonly csrf: string;
  readonly readOnly: boolean;
  readonly canPark: boolean;
}

const link = (ctx: PageContext, path: string) => `${ctx.base}${path}`;
const enc = encodeURIComponent;

function layout(ctx: PageContext, title: string, body: VNode, refreshSeconds?: number): string {
  const page = html`<html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      ${refreshSeconds ? html`<meta http-equiv="refresh" content=${String(refreshSeconds)} />` : null}
      <title>${title} · Switchboard console</title>
      <link rel="stylesheet" href=${link(ctx, '/assets/console.css')} />
    </head>
    <body>
      <header>
        <strong>Switchboard</strong> DLQ console
        <nav><a href=${link(ctx, '/')}>Overview</a> <a href=${link(ctx, '/jobs')}>Jobs</a> <a href=${link(ctx, '/audit')}>Audit</a></nav>
        <span class="who">${ctx.readOnly ? html`<span class="badge">read-only</span> ` : null}${ctx.actor}</span>
        ${ctx.actor ? html`<form method="post" action=${link(ctx, '/logout')} class="inline"><input type="hidden" name="_csrf" value=${ctx.csrf} /><button>Sign out</button></form>` : null}
      </header>
      <main>${body}</main>
    </body>
  </html>`;
  return `<!doctype html>${render(page)}`;
}

function depthChart(samples: QueueView['samples']): VNode {
  const width = 240;
  const height = 40;
  if (samples.length < 2) return html`<span class="muted">${samples.length === 1 ? 'one sample' : 'no samples'}</span>`;
  const max = Math.max(1, ...samples.map((s) => s.depth));
  const t0 = samples[0]!.at;
  const span = Math.max(1, samples.at(-1)!.at - t0);
  const points = samples.map((s) => `${((s.at - t0) / span) * width},${height - (s.depth / max) * (height - 4) - 2}`).join(' ');
  return html`<svg width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${`depth over time, max ${max}`}>
    <polyline fill="none" stroke="#c0392b" stroke-width="2" points=${points} />
  </svg>`;
}

function hourlyChart(letters: readonly ConsoleLetter[], now: number): VNode {
  const hours = Array.from({ length: 24 }, () => 0);
  for (const l of letters) {
    const ago = Math.floor((now - l.lastFailureAt) / 3600_000);
    if (ago >= 0 && ago < 24) hours[23 - ago]!++;
  }
  const max = Math.max(1, ...hours);
  return html`<svg width="480" height="80" viewBox="0 0 480 80" role="img" aria-label="new dead letters per hour, last 24 hours">
    ${hours.map((n, i) => html`<rect x=${i * 20 + 2} y=${78 - (n / max) * 74} width="16" height=${(n / max) * 74} fill="#2c6fbb"><title>${`${23 - i} h ago: ${n}`}</title></rect>`)}
  </svg>`;
}

export function loginPage(ctx: PageContext, error: string): string {
  return layout(
    ctx,
    'Sign in',
    html`<h1>Sign in</h1>
      ${error ? html`<p class="error">${error}</p>` : null}
      <form method="post" action=${link(ctx, '/login')}>
        <label>Token <input type="password" name="token" autocomplete="current-password" required /></label>
        <button>Sign in</button>
      </form>`,
  );
}

export function overviewPage(ctx: PageContext, queues: readonly QueueView[], groups: readonly FingerprintGroup[], letters: readonly ConsoleLetter[], now: number): string {
  const perGroup = new Map<string, { queue: string; group: string; count: number; oldest: number; lastHour: number }>();
  for (const l of letters) {
    const id = `${l.source}/${l.deadLetterTopic}/${l.group}`;
    const row = perGroup.get(id) ?? { queue: `${l.source} · ${l.deadLetterTopic || 'parking lot'}`, group: l.group || '—', count: 0, oldest: now, lastHour: 0 };
    row.count++;
    row.oldest = Math.min(row.oldest, l.lastFailureAt);
    if (now - l.lastFailureAt < 3600_000) row.lastHour++;
    perGroup.set(id, row);
  }
  return layout(
    ctx,
    'Overview',
    html`<h1>Dead letters</h1>
      <section>
        <h2>Queues</h2>
        <table>
          <thead><tr><th>source</th><th>kind</th><th>DLQ</th><th>depth</th><th>depth over time</th><th>scanned</th></tr></thead>
          <tbody>
            ${queues.map(
              (q) => html`<tr class=${q.error ? 'failing' : ''}>
                <td>${q.source}</td><td>${q.kind}</td><td>${q.deadLetterTopic || '—'}</td>
                <td class="num" data-testid="depth">${q.truncated ? '≥ ' : ''}${q.depth}</td>
                <td>${depthChart(q.samples)}</td>
                <td>${age(now - q.scannedAt)} ago${q.error ? html`<div class="error">${clip(q.error, 300)}</div>` : null}</td>
              </tr>`,
            )}
          </tbody>
        </table>
        ${ctx.readOnly ? null : html`<form method="post" action=${link(ctx, '/refresh')} class="inline"><input type="hidden" name="_csrf" value=${ctx.csrf} /><button>Rescan now</button></form>`}
      </section>
      <section>
        <h2>By DLQ and failing group</h2>
        <table>
          <thead><tr><th>DLQ</th><th>group</th><th>letters</th><th>new in the last hour</th><th>oldest</th></tr></thead>
          <tbody>${[...perGroup.values()].map((r) => html`<tr><td>${r.queue}</td><td>${r.group}</td><td class="num">${r.count}</td><td class="num">${r.lastHour}</td><td>${age(now - r.oldest)}</td></tr>`)}</tbody>
        </table>
        <h3>New dead letters per hour (last 24 h)</h3>
        ${hourlyChart(letters, now)}
      </section>
      <section>
        <h2>Failures by fingerprint</h2>
        <table class="groups">
          <thead><tr><th>fingerprint</th><th>reason</th><th>error</th><th>message (normalised)</th><th>count</th><th>first seen</th><th>last seen</th><th>topics</th></tr></thead>
          <tbody>
            ${groups.map(
              (g) => html`<tr data-fingerprint=${g.fingerprint}>
                <td><a href=${link(ctx, `/groups/${enc(g.fingerprint)}`)}>${g.fingerprint}</a></td>
                <td>${g.reason}</td><td>${clip(g.errorName, 100)}</td><td class="msg">${clip(g.message, 300)}</td>
                <td class="num">${g.count}</td><td>${iso(g.firstSeen)}</td><td>${iso(g.lastSeen)}</td><td>${clip(g.topics.join(', '), 300)}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </section>`,
  );
}

function actionFields(ctx: PageContext, single: boolean): VNode {
  return html`<fieldset class="actions">
    <input type="hidden" name="_csrf" value=${ctx.csrf} />
    <label>Rate (per second, 0 = no limit) <input type="number" name="rate" min="0" max="10000" value="50" /></label>
    <label>Reason <input type="text" name="reason" maxlength="500" placeholder="required to discard" /></label>
    <button name="action" value="replay">${single ? 'Replay' : 'Replay selected'}</button>
    ${ctx.canPark ? html`<button name="action" value="park">${single ? 'Park' : 'Park selected'}</button>` : null}
    <button name="action" value="discard" class="danger">${single ? 'Discard' : 'Discard selected'}</button>
  </fieldset>`;
}

export function groupPage(ctx: PageContext, group: FingerprintGroup, letters: readonly ConsoleLetter[], shownLimit: number): string {
  const shown = letters.slice(0, shownLimit);
  return layout(
    ctx,
    `Group ${group.fingerprint}`,
    html`<h1>Fingerprint ${group.fingerprint}</h1>
      <p><strong>${group.reason}</strong> · ${clip(group.errorName, 100)} · <span class="msg">${clip(group.message, 500)}</span></p>
      <p>${group.count} letter(s), first ${iso(group.firstSeen)}, last ${iso(group.lastSeen)}</p>
      ${
        ctx.readOnly
          ? null
          : html`<form method="post" action=${link(ctx, '/actions')} class="whole-group">
              <input type="hidden" name="fingerprint" value=${group.fingerprint} />
              <input type="hidden" name="_csrf" value=${ctx.csrf} />
              <label>Rate (per second) <input type="number" name="rate" min="0" max="10000" value="50" /></label>
              <button name="action" value="replay" data-testid="replay-group">Replay the whole group (${group.count})</button>
            </form>`
      }
      <form method="post" action=${link(ctx, '/actions')}>
        <table>
          <thead><tr><th></th><th>source</th><th>DLQ</th><th>message id</th><th>original topic</th><th>group</th><th>attempts</th><th>failed at</th></tr></thead>
          <tbody>
            ${shown.map(
              (l) => html`<tr>
                <td>${ctx.readOnly ? null : html`<input type="checkbox" name="key" value=${l.letterKey} aria-label="select" />`}</td>
                <td>${l.source}</td><td>${l.deadLetterTopic || 'parking lot'}</td>
                <td><a href=${link(ctx, `/letters/${enc(l.letterKey)}`)}>${clip(l.id, 80)}</a></td>
                <td>${clip(l.originalTopic, 120)}</td><td>${clip(l.group, 120) || '—'}</td><td class="num">${l.attempts}</td><td>${iso(l.lastFailureAt)}</td>
              </tr>`,
            )}
          </tbody>
        </table>
        ${letters.length > shown.length ? html`<p class="muted">${letters.length - shown.length} more not listed (the whole-group replay includes them).</p>` : null}
        ${ctx.readOnly ? null : actionFields(ctx, false)}
      </form>`,
  );
}

export function letterPage(ctx: PageContext, letter: ConsoleLetter, history: readonly AuditEntry[]): string {
  const payload = shownPayload(letter.body);
  const editable = payload.kind !== 'binary' && !payload.clipped;
  return layout(
    ctx,
    `Letter ${clip(letter.id, 40)}`,
    html`<h1>Message ${clip(letter.id, 200)}</h1>
      <dl class="facts">
        <dt>source</dt><dd>${letter.source} · ${letter.deadLetterTopic || 'parking lot'}</dd>
        <dt>original topic</dt><dd>${clip(letter.originalTopic, 300)}</dd>
        <dt>group</dt><dd>${clip(letter.group, 300) || '—'}</dd>
        <dt>key</dt><dd>${letter.key === undefined ? '—' : clip(letter.key, 300)}</dd>
        <dt>reason</dt><dd>${letter.reason}</dd>
        <dt>attempts</dt><dd>${letter.attempts}</dd>
        <dt>first / last failure</dt><dd>${iso(letter.firstFailureAt)} / ${iso(letter.lastFailureAt)}</dd>
        <dt>fingerprint</dt><dd><a href=${link(ctx, `/groups/${enc(letter.fingerprint)}`)}>${letter.fingerprint}</a></dd>
      </dl>
      <h2>Error</h2>
      <p><strong>${clip(letter.errorName, 200)}</strong>: <span class="msg">${clip(letter.errorMessage, 2000)}</span></p>
      ${letter.errorStack ? html`<pre class="stack">${clip(letter.errorStack, 8000)}</pre>` : null}
      <h2>Payload <span class="muted">(${payload.kind}, ${payload.bytes} bytes)</span></h2>
      <pre class="payload" data-testid="payload">${payload.text}</pre>
      ${payload.base64 !== undefined ? html`<h3>base64</h3><pre class="payload">${payload.base64}</pre>` : null}
      ${payload.clipped ? html`<p class="muted">Only the start is shown.</p>` : null}
      <p><a href=${link(ctx, `/letters/${enc(letter.letterKey)}/payload`)}>Download the payload</a></p>
      <h2>Headers</h2>
      <table class="headers"><tbody>${shownHeaders(letter.headers).map(([name, value]) => html`<tr><th>${name}</th><td>${value}</td></tr>`)}</tbody></table>
      <h2>History</h2>
      <ul>
        <li>${letter.attempts} attempt(s); failed first ${iso(letter.firstFailureAt)}, last ${iso(letter.lastFailureAt)}</li>
        ${letter.headers[REPLAY_COUNT_HEADER] ? html`<li>replayed ${letter.headers[REPLAY_COUNT_HEADER]} time(s) before</li>` : null}
        ${letter.headers[PARKING_HISTORY_HEADER] ? html`<li>parking history: ${clip(letter.headers[PARKING_HISTORY_HEADER], 2000)}</li>` : null}
        ${history.map((e) => html`<li>${iso(e.at)} · ${e.actor} · ${e.action} · ${clip(e.detail, 500)} (job ${e.jobId})</li>`)}
      </ul>
      ${
        ctx.readOnly
          ? null
          : html`<h2>Act</h2>
            <form method="post" action=${link(ctx, '/actions')}>
              <input type="hidden" name="key" value=${letter.letterKey} />
              ${actionFields(ctx, true)}
            </form>
            ${
              editable
                ? html`<h3>Edit and replay</h3>
                  <form method="post" action=${link(ctx, '/actions')}>
                    <input type="hidden" name="key" value=${letter.letterKey} />
                    <input type="hidden" name="_csrf" value=${ctx.csrf} />
                    <input type="hidden" name="edit" value="1" />
                    <textarea name="payload" rows="12" cols="100" value=${payload.text}></textarea>
                    <label>Reason <input type="text" name="reason" maxlength="500" /></label>
                    <button name="action" value="replay">Replay with this payload</button>
                  </form>`
                : null
            }`
      }`,
  );
}

export function jobsPage(ctx: PageContext, jobs: readonly ConsoleJob[]): string {
  return layout(
    ctx,
    'Jobs',
    html`<h1>Jobs</h1>
      <table>
        <thead><tr><th>job</th><th>action</th><th>by</th><th>created</th><th>progress</th><th>state</th></tr></thead>
        <tbody>${jobs.map((j) => html`<tr><td><a href=${link(ctx, `/jobs/${enc(j.id)}`)}>${j.id}</a></td><td>${j.action}</td><td>${j.actor}</td><td>${iso(j.createdAt)}</td><td>${j.applied} / ${j.total}</td><td>${j.state}</td></tr>`)}</tbody>
      </table>`,
  );
}

export function jobPage(ctx: PageContext, job: ConsoleJob, trail: readonly AuditEntry[]): string {
  const running = job.state === 'running';
  return layout(
    ctx,
    `Job ${job.id}`,
    html`<h1>Job ${job.id}: ${job.action}</h1>
      <p>by ${job.actor}, ${iso(job.createdAt)}${job.ratePerSecond > 0 ? `, at most ${job.ratePerSecond}/s` : ''}${job.reason ? html` · reason: ${clip(job.reason, 500)}` : null}</p>
      <p><progress max=${job.total} value=${job.applied}></progress> <span data-testid="progress">${job.applied} / ${job.total}</span> done, ${job.removed} removed from their DLQ</p>
      <p>state: <strong data-testid="job-state">${job.state}</strong>${job.error ? html` <span class="error" data-testid="job-error">${running ? 'paused: ' : ''}${clip(job.error, 1000)}</span>` : null}</p>
      <h2>Audit</h2>
      <table>
        <thead><tr><th>at</th><th>by</th><th>action</th><th>message</th><th>detail</th></tr></thead>
        <tbody>${trail.map((e) => html`<tr><td>${iso(e.at)}</td><td>${e.actor}</td><td>${e.action}</td><td>${clip(e.messageId, 80)}</td><td>${clip(e.detail, 300)}</td></tr>`)}</tbody>
      </table>`,
    running ? 1 : undefined,
  );
}

export function auditPage(ctx: PageContext, trail: readonly AuditEntry[]): string {
  return layout(
    ctx,
    'Audit',
    html`<h1>Audit trail</h1>
      <table>
        <thead><tr><th>#</th><th>at</th><th>by</th><th>action</th><th>job</th><th>source</th><th>message</th><th>detail</th></tr></thead>
        <tbody>${trail.map((e) => html`<tr><td>${e.seq}</td><td>${iso(e.at)}</td><td>${e.actor}</td><td>${e.action}</td><td>${e.jobId}</td><td>${e.source} ${e.deadLetterTopic}</td><td>${clip(e.messageId, 80)}</td><td>${clip(e.detail, 300)}</td></tr>`)}</tbody>
      </table>`,
  );
}

export function messagePage(ctx: PageContext, title: string, message: string): string {
  return layout(ctx, title, html`<h1>${title}</h1><p class="error">${message}</p><p><a href=${link(ctx, '/')}>Back to the overview</a></p>`);
}

export const CONSOLE_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { display: flex; gap: 1.5em; align-items: center; padding: .6em 1.2em; background: #1d2330; color: #fff; }
header a { color: #cfe0ff; margin-right: .8em; } header .who { margin-left: auto; }
main { padding: 1em 1.5em; } h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; background: #fff; margin: .5em 0; } th, td { border: 1px solid #dde1e8; padding: .3em .6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } .msg { font-family: ui-monospace, monospace; word-break: break-all; }
pre { background: #fff; border: 1px solid #dde1e8; padding: .8em; max-height: 30em; overflow: auto; white-space: pre-wrap; word-break: break-all; }
.error { color: #b3261e; } .muted { color: #6b7280; } .badge { background: #f0ad4e; color: #000; padding: 0 .4em; border-radius: 3px; }
form.inline { display: inline; } fieldset.actions { border: 1px solid #dde1e8; margin-top: .8em; } button { margin: .2em; } button.danger { color: #b3261e; }
tr.failing td { background: #fdecea; } dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; } dt { color: #6b7280; }
table.headers th { font-family: ui-monospace, monospace; font-weight: normal; } table.headers td { font-family: ui-monospace, monospace; word-break: break-all; }
`;
