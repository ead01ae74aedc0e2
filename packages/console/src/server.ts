import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ConsoleAction, type ConsoleStore, MemoryConsoleStore, type ParkingLot } from '@switchboard/core';
import { ConsoleAuth, type ConsoleAuthOptions, type Principal } from './auth.js';
import { type ConsoleLetter, type ConsoleSource, DeadLetterInventory } from './inventory.js';
import { ActionError, JobRunner } from './jobs.js';
import { auditPage, CONSOLE_CSS, groupPage, jobPage, jobsPage, letterPage, loginPage, messagePage, overviewPage, type PageContext } from './pages.js';

export interface ConsoleOptions extends ConsoleAuthOptions {
  readonly sources: readonly ConsoleSource[];
  /** The parking lot to show and park into (optional). */
  readonly parkingLot?: ParkingLot;
  /** Jobs and the audit trail. In memory by default: jobs then do not survive a restart (use `PostgresConsoleStore`). */
  readonly store?: ConsoleStore;
  /** The path the handler is mounted under (e.g. `/console`), for its links. Default ''. */
  readonly basePath?: string;
  /** Shows everything, refuses every action (403). */
  readonly readOnly?: boolean;
  /** How often the DLQs are scanned (default 30 s; 0 = only at start, after jobs and on "Rescan"). */
  readonly scanIntervalMs?: number;
  /** At most this many letters read per DLQ and scan (default 5,000). */
  readonly scanLimit?: number;
  /** A walk of a queue ends after this long without a letter (default 1,500 ms). */
  readonly idleMs?: number;
  /** Largest form body accepted (default 4 MiB: an edited payload travels in it). */
  readonly maxBodyBytes?: number;
}

/** Headers on every response: no script, no framing, no sniffing, no caching, no referrer to other sites. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readForm(request: IncomingMessage, limit: number): Promise<URLSearchParams> {
  const type = request.headers['content-type'] ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) throw new HttpError(415, 'expected a form (application/x-www-form-urlencoded)');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `the form is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * The DLQ console: `handler` is a plain Node request handler (mount it in `http.createServer`, Express
 * `app.use('/console', console.handler)` with `basePath: '/console'`, Fastify or NestJS: see the README);
 * `start()` scans the DLQs and resumes unfinished jobs; `close()` stops both (transports stay open: they are the caller's).
 */
export class DeadLetterConsole {
  readonly inventory: DeadLetterInventory;
  readonly jobs: JobRunner;
  private readonly auth: ConsoleAuth;
  private readonly store: ConsoleStore;
  private readonly base: string;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;

  constructor(private readonly options: ConsoleOptions) {
    this.auth = new ConsoleAuth(options);
    this.store = options.store ?? new MemoryConsoleStore();
    this.base = (options.basePath ?? '').replace(/\/$/, '');
    if (this.base && !/^\/[\w\-/.]*$/.test(this.base)) throw new Error(`console basePath: a path like /console (got "${this.base}")`);
    for (const s of options.sources) if (s.name === 'parking' || !/^[\w.-]{1,64}$/.test(s.name)) throw new Error(`console source name "${s.name}": letters, digits, . _ - only, and not "parking"`);
    this.inventory = new DeadLetterInventory(options.sources, options.parkingLot, this.store, { limit: options.scanLimit ?? 5000, idleMs: options.idleMs ?? 1500 });
    this.jobs = new JobRunner(this.store, this.inventory, options.idleMs ?? 1500);
  }

  /** Scans every DLQ once, resumes the jobs a previous process left running, then rescans on the interval. */
  async start(): Promise<{ resumed: number }> {
    await this.rescan();
    const resumed = this.options.readOnly ? 0 : await this.jobs.resumeUnfinished();
    const every = this.options.scanIntervalMs ?? 30_000;
    if (every > 0) this.timer = setInterval(() => void this.rescan(), every).unref();
    return { resumed };
  }

  /** One scan at a time; a call during a scan waits for it. */
  rescan(): Promise<void> {
    this.scanning ??= this.inventory.refresh().finally(() => (this.scanning = undefined));
    return this.scanning;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.jobs.stop();
    await this.scanning;
    await this.inventory.close();
  }

  readonly handler = (request: IncomingMessage, response: ServerResponse): void => {
    this.handle(request, response).catch((error) => {
      const status = error instanceof HttpError ? error.status : error instanceof ActionError ? 400 : 500;
      const message = status === 500 ? 'internal error (see the console log)' : (error as Error).message;
      if (status === 500) console.error('switchboard console:', error);
      if (response.headersSent) return response.end();
      this.send(response, status, messagePage(this.context(undefined), `${status}`, message));
    });
  };

  private context(principal: Principal | undefined): PageContext {
    return { base: this.base, actor: principal?.actor ?? '', csrf: principal?.csrf ?? '', readOnly: Boolean(this.options.readOnly), canPark: Boolean(this.options.parkingLot) };
  }

  private send(response: ServerResponse, status: number, body: string | Buffer, type = 'text/html; charset=utf-8', extra: Record<string, string> = {}): void {
    response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, ...extra });
    response.end(body);
  }

  private redirect(response: ServerResponse, path: string, extra: Record<string, string> = {}): void {
    response.writeHead(303, { ...SECURITY_HEADERS, location: `${this.base}${path}`, ...extra });
    response.end();
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://console.invalid');
    let path = url.pathname;
    if (this.base && path.startsWith(`${this.base}/`)) path = path.slice(this.base.length);
    else if (this.base && path === this.base) path = '/';
    const method = request.method ?? 'GET';
    if (method !== 'GET' && method !== 'POST' && method !== 'HEAD') throw new HttpError(405, 'method not allowed');
    if (method === 'POST') this.checkOrigin(request);
    if (path === '/assets/console.css') return this.send(response, 200, CONSOLE_CSS, 'text/css; charset=utf-8');
    if (path === '/login') return this.login(request, response, method);
    const principal = await this.auth.principal(request);
    if (!principal) {
      if (method === 'GET' && this.auth.usesTokens && request.headers.authorization === undefined) return this.redirect(response, '/login');
      throw new HttpError(401, 'sign in first');
    }
    const ctx = this.context(principal);
    if (method === 'POST') return this.post(request, response, path, principal);
    const now = Date.now();
    if (path === '/') return this.send(response, 200, overviewPage(ctx, this.inventory.queueViews(), this.inventory.groups(), this.inventory.allLetters(), now));
    if (path === '/jobs') return this.send(response, 200, jobsPage(ctx, await this.store.jobs(100)));
    if (path === '/audit') return this.send(response, 200, auditPage(ctx, await this.store.audit({ limit: 500 })));
    let match = /^\/groups\/([0-9a-f]{12})$/.exec(path);
    if (match) {
      const group = this.inventory.groups().find((g) => g.fingerprint === match![1]);
      if (!group) throw new HttpError(404, 'no such fingerprint group now (its letters may have been handled)');
      return this.send(response, 200, groupPage(ctx, group, this.inventory.inGroup(group.fingerprint), 500));
    }
    match = /^\/letters\/([\w:.-]{1,80})(\/payload)?$/.exec(path);
    if (match) {
      const letter = this.inventory.letter(decodeURIComponent(match[1]!));
      if (!letter) throw new HttpError(404, 'no such letter now (it may have been handled)');
      if (match[2]) return this.send(response, 200, Buffer.from(letter.body), 'application/octet-stream', { 'content-disposition': 'attachment; filename="payload.bin"' });
      return this.send(response, 200, letterPage(ctx, letter, await this.store.audit({ messageId: letter.id, limit: 100 })));
    }
    match = /^\/jobs\/(\w{1,40})$/.exec(path);
    if (match) {
      const job = await this.store.job(match[1]!);
      if (!job) throw new HttpError(404, 'no such job');
      return this.send(response, 200, jobPage(ctx, job, await this.store.audit({ jobId: job.id, limit: 200 })));
    }
    throw new HttpError(404, 'not found');
  }

  /**
   * A form posted from another site is refused before its CSRF token is even looked at: by the
   * browser's Sec-Fetch-Site where it sends one, else by the Origin header (absent for non-browser clients).
   */
  private checkOrigin(request: IncomingMessage): void {
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined) {
      if (site !== 'same-origin' && site !== 'none') throw new HttpError(403, 'cross-site request refused');
      return;
    }
    const origin = request.headers.origin;
    if (origin === undefined) return;
    let host: string | undefined;
    try {
      host = origin === 'null' ? undefined : new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host === undefined || host !== request.headers.host) throw new HttpError(403, 'cross-site request refused');
  }

  private async login(request: IncomingMessage, response: ServerResponse, method: string): Promise<void> {
    const ctx = this.context(undefined);
    if (!this.auth.usesTokens) return this.redirect(response, '/');
    if (method !== 'POST') return this.send(response, 200, loginPage(ctx, ''));
    const form = await readForm(request, 4096);
    const actor = this.auth.actorOfToken(form.get('token') ?? '');
    if (!actor) return this.send(response, 401, loginPage(ctx, 'unknown token'));
    const secure = (request.socket as { encrypted?: boolean }).encrypted === true;
    this.redirect(response, '/', { 'set-cookie': this.auth.signIn(actor, this.base || '/', secure) });
  }

  private async post(request: IncomingMessage, response: ServerResponse, path: string, principal: Principal): Promise<void> {
    const form = await readForm(request, this.options.maxBodyBytes ?? 4 * 1024 * 1024);
    if (!this.auth.csrfValid(principal, form.get('_csrf') ?? undefined)) throw new HttpError(403, 'missing or wrong CSRF token (reload the page)');
    if (path === '/logout') return this.redirect(response, '/login', { 'set-cookie': this.auth.signOut(request, this.base || '/') });
    if (this.options.readOnly) throw new HttpError(403, 'the console is read-only');
    if (path === '/refresh') {
      await this.rescan();
      return this.redirect(response, '/');
    }
    if (path !== '/actions') throw new HttpError(404, 'not found');
    const action = form.get('action') as ConsoleAction | null;
    if (action !== 'replay' && action !== 'park' && action !== 'discard') throw new ActionError('action: replay, park or discard');
    const rate = Number(form.get('rate') ?? 0);
    if (!Number.isFinite(rate) || rate < 0 || rate > 10_000) throw new ActionError('rate: a number of messages per second from 0 (no limit) to 10000');
    const fingerprint = form.get('fingerprint');
    let letters: ConsoleLetter[];
    if (fingerprint) letters = this.inventory.inGroup(fingerprint);
    else {
      const keys = form.getAll('key');
      letters = keys.map((key) => this.inventory.letter(key)).filter((l): l is ConsoleLetter => l !== undefined);
      if (letters.length < keys.length) throw new ActionError(`${keys.length - letters.length} of the selected letters are gone (handled meanwhile?): reload and select again`);
    }
    const edit = form.get('edit') === '1';
    const job = await this.jobs.submit({
      action,
      actor: principal.actor,
      letters,
      reason: (form.get('reason') ?? '').slice(0, 500),
      ratePerSecond: rate,
      ...(edit ? { editedPayload: new TextEncoder().encode(form.get('payload') ?? '') } : {}),
    });
    this.redirect(response, `/jobs/${job.id}`);
  }
}

/** Serves `console` on `host:port` (loopback by default); resolves once listening. */
export async function serveConsole(console: DeadLetterConsole, options: { host?: string; port?: number } = {}): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer(console.handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${host}:${address.port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
