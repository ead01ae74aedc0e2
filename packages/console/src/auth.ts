import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Who is asking: the operator's name for the audit trail, or undefined (not signed in). A hook lets an
 * application plug its own sign-in (a reverse proxy's header, its own session); it runs on every request.
 */
export type ConsoleAuthenticate = (request: IncomingMessage) => Promise<string | undefined> | string | undefined;

export interface ConsoleAuthOptions {
  /** Operator name → secret token. Tokens sign in through the login form (a session cookie) or `Authorization: Bearer`. */
  readonly tokens?: Readonly<Record<string, string>>;
  /** Replaces the tokens: the application's own sign-in. */
  readonly authenticate?: ConsoleAuthenticate;
  /** How long a session lasts (default 8 h). */
  readonly sessionTtlMs?: number;
}

/** Who made a request, and how: a cookie session must carry the CSRF token on every action; a bearer token need not. */
export interface Principal {
  readonly actor: string;
  readonly via: 'session' | 'bearer' | 'hook';
  /** The anti-CSRF token forms must send back (`_csrf`). */
  readonly csrf: string;
}

export const SESSION_COOKIE = 'sb_console_session';

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookies(request: IncomingMessage): Map<string, string> {
  const jar = new Map<string, string>();
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) jar.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return jar;
}

/** Sign-in by token or hook, sessions in memory, CSRF tokens bound to the session (HMAC with a per-process secret). */
export class ConsoleAuth {
  private readonly secret = randomBytes(32);
  private readonly sessions = new Map<string, { actor: string; expires: number }>();
  private readonly tokens: ReadonlyArray<readonly [string, string]>;
  private readonly ttl: number;

  constructor(private readonly options: ConsoleAuthOptions) {
    this.tokens = Object.entries(options.tokens ?? {});
    if (!options.authenticate && this.tokens.length === 0) throw new Error('console auth: give tokens (operator name → token) or an authenticate hook');
    for (const [actor, token] of this.tokens) if (token.length < 16) throw new Error(`console auth: the token of "${actor}" is shorter than 16 characters`);
    this.ttl = options.sessionTtlMs ?? 8 * 3600_000;
  }

  get usesTokens(): boolean {
    return !this.options.authenticate;
  }

  private csrfFor(binding: string): string {
    return createHmac('sha256', this.secret).update(binding).digest('base64url');
  }

  /** The operator a token belongs to, compared in constant time. */
  actorOfToken(token: string): string | undefined {
    let found: string | undefined;
    for (const [actor, expected] of this.tokens) if (safeEqual(token, expected)) found = actor;
    return found;
  }

  async principal(request: IncomingMessage): Promise<Principal | undefined> {
    if (this.options.authenticate) {
      const actor = await this.options.authenticate(request);
      return actor ? { actor, via: 'hook', csrf: this.csrfFor(`hook:${actor}`) } : undefined;
    }
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (bearer) {
      const actor = this.actorOfToken(bearer);
      return actor ? { actor, via: 'bearer', csrf: '' } : undefined;
    }
    const sid = cookies(request).get(SESSION_COOKIE);
    const session = sid ? this.sessions.get(sid) : undefined;
    if (!sid || !session) return undefined;
    if (session.expires < Date.now()) {
      this.sessions.delete(sid);
      return undefined;
    }
    return { actor: session.actor, via: 'session', csrf: this.csrfFor(`session:${sid}`) };
  }

  /** True when an action may proceed: bearer requests need no CSRF token; the others must send the right one. */
  csrfValid(principal: Principal, sent: string | undefined): boolean {
    if (principal.via === 'bearer') return true;
    return sent !== undefined && safeEqual(sent, principal.csrf);
  }

  /** A new session for `actor`: the Set-Cookie value. */
  signIn(actor: string, cookiePath: string, secure: boolean): string {
    const sid = randomBytes(32).toString('base64url');
    this.sessions.set(sid, { actor, expires: Date.now() + this.ttl });
    return `${SESSION_COOKIE}=${sid}; Path=${cookiePath || '/'}; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(this.ttl / 1000)}${secure ? '; Secure' : ''}`;
  }

  signOut(request: IncomingMessage, cookiePath: string): string {
    const sid = cookies(request).get(SESSION_COOKIE);
    if (sid) this.sessions.delete(sid);
    return `${SESSION_COOKIE}=; Path=${cookiePath || '/'}; HttpOnly; SameSite=Strict; Max-Age=0`;
  }
}
