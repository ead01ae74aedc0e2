/**
 * Hostile dead letters (script in ids, headers, payloads and error messages; javascript: URLs; 1 MB
 * strings; invalid UTF-8) shown inert in a real Chromium, and the console's refusals: every action
 * needs a signed-in operator, a session's actions need its CSRF token and a same-origin form, a
 * read-only console acts on nothing.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bus, createBus, NonRetryableError, type Transport } from '@switchboard/core';
import { eventually, uniqueName } from '@switchboard/core/testing';
import { createRedisPubSubTransport } from '@switchboard/redis-pubsub';
import { DeadLetterConsole, serveConsole } from '@switchboard/console';
import { launchBrowser, noBrowser, signIn, TOKEN, textNow } from './helpers.js';

const SCRIPT_ID = 'evil-"><script>window.__pwned=5</script>';
const MEGABYTE = 1 << 20;

describe('DLQ console: hostile data and refusals (Redis DLQ stream)', () => {
  let transport: Transport;
  let bus: Bus;
  let console_: DeadLetterConsole;
  let readOnly: DeadLetterConsole;
  let served: Awaited<ReturnType<typeof serveConsole>>;
  let servedReadOnly: Awaited<ReturnType<typeof serveConsole>>;
  let browser: Browser | undefined;
  let topic: string;

  beforeAll(async () => {
    transport = await createRedisPubSubTransport({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
    bus = createBus({ transport });
    topic = uniqueName('console-hostile');
    await bus.subscriber.subscribe(topic, (m: { value: { n: number } }) => {
      throw new NonRetryableError(m.value.n === 2 ? 'E'.repeat(MEGABYTE) : '<img src=x onerror="window.__pwned=3"><script>window.__pwned=4</script> see javascript:alert(3)');
    });
    await bus.publisher.publish(topic, {
      id: SCRIPT_ID,
      headers: { 'x-evil': '<script>window.__pwned=1</script>', authorization: 'Bearer hunter2-secret-value', 'x-link': 'javascript:alert(1)' },
      value: { n: 1, html: '<script>window.__pwned=2</script>', url: 'javascript:alert(2)' },
    });
    await bus.publisher.publish(topic, { id: 'evil-huge', value: { n: 2, blob: 'A'.repeat(MEGABYTE) } });
    // Not UTF-8 (so not JSON either): the consumer cannot decode it and dead-letters it as malformed.
    await bus.publisher.publish(topic, { id: 'evil-bytes', payload: Uint8Array.from([0xff, 0xfe, 0x3c, 0x73, 0x63, 0x72, 0x69, 0x70, 0x74, 0x3e, 0xc3, 0x28]) });
    const sources = [{ name: 'redis', transport, publisher: bus.publisher, deadLetterTopics: [`${topic}-dlq`] }];
    console_ = new DeadLetterConsole({ sources, tokens: { alice: TOKEN }, scanIntervalMs: 0 });
    readOnly = new DeadLetterConsole({ sources, tokens: { alice: TOKEN }, scanIntervalMs: 0, readOnly: true });
    await eventually(
      async () => {
        await console_.rescan();
        return console_.inventory.allLetters().length === 3 ? true : undefined;
      },
      30_000,
      'three hostile dead letters',
    );
    await readOnly.start();
    served = await serveConsole(console_);
    servedReadOnly = await serveConsole(readOnly);
    if (!noBrowser) browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await served?.close();
    await servedReadOnly?.close();
    await console_?.close();
    await readOnly?.close();
    await bus?.close();
  });

  const letterKey = (id: string) => console_.inventory.allLetters().find((l) => l.id === id)!.letterKey;

  async function openInert(page: Page, path: string): Promise<string> {
    const response = await page.goto(`${served.url}${path}`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'none'");
    expect(response?.headers()['x-content-type-options']).toBe('nosniff');
    expect(await page.evaluate(() => 1 + 1)).toBe(2); // the probe itself runs (it is not blocked by the CSP)
    expect(await page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned)).toBeUndefined();
    expect(await page.locator('script').count()).toBe(0);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('a[href^="javascript:"], [onerror], [onclick]').count()).toBe(0);
    return page.content();
  }

  it.skipIf(noBrowser)(`shows script, javascript: URLs, 1 MB strings and invalid UTF-8 inert, and redacts credentials${noBrowser ? ` (skipped: ${noBrowser})` : ''}`, async () => {
    const page = await browser!.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await signIn(page, served.url, TOKEN);
    await openInert(page, '/');
    const group = console_.inventory.groups().find((g) => g.message.includes('<script>'))!;
    await openInert(page, `/groups/${group.fingerprint}`);

    const scripted = await openInert(page, `/letters/${letterKey(SCRIPT_ID)}`);
    expect(await textNow(page, 'h1')).toBe(`Message ${SCRIPT_ID}`); // the id, as text
    expect(await page.locator('table.headers').textContent()).toContain('<script>window.__pwned=1</script>');
    expect(await textNow(page, '[data-testid=payload]')).toContain('"url": "javascript:alert(2)"');
    expect(scripted).not.toContain('hunter2-secret-value');
    expect(await page.locator('table.headers tr', { hasText: 'authorization' }).textContent()).toContain('[redacted]');

    await openInert(page, `/letters/${letterKey('evil-huge')}`);
    const shown = (await textNow(page, '[data-testid=payload]')) ?? '';
    expect(shown.length).toBeGreaterThan(60_000);
    expect(shown.length).toBeLessThanOrEqual(64 * 1024);
    expect(await page.getByText('Only the start is shown.').count()).toBe(1);
    expect((await page.content()).length).toBeLessThan(300_000); // the 1 MB error message is clipped too

    await openInert(page, `/letters/${letterKey('evil-bytes')}`);
    expect(await textNow(page, 'h2:has-text("Payload")')).toContain('binary, 12 bytes');
    expect(await textNow(page, '[data-testid=payload]')).toBe('ff fe 3c 73 63 72 69 70 74 3e c3 28');
    expect(dialogs).toEqual([]);
    await page.close();
  });

  it('refuses actions without a signed-in operator (401), without the CSRF token or from another site (403), and on a read-only console (403)', async () => {
    const key = letterKey('evil-bytes');
    const form = (fields: Record<string, string>) => ({ 'content-type': 'application/x-www-form-urlencoded', body: new URLSearchParams(fields).toString() });
    const post = async (base: string, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) => {
      const { body, ...type } = form(fields);
      return fetch(`${base}${path}`, { method: 'POST', headers: { ...type, ...headers }, body, redirect: 'manual' });
    };
    const replay = { action: 'replay', key, rate: '0' };

    expect((await fetch(`${served.url}/`, { redirect: 'manual' })).status).toBe(303); // to the login page
    expect((await fetch(`${served.url}/letters/${key}`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    expect((await post(served.url, '/actions', replay)).status).toBe(401);
    expect((await post(served.url, '/actions', replay, { authorization: 'Bearer wrong-token-0123456789' })).status).toBe(401);
    expect((await post(served.url, '/login', { token: 'wrong-token-0123456789' })).status).toBe(401);

    // A session: its cookie alone is not enough.
    const login = await post(served.url, '/login', { token: TOKEN });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    expect(login.headers.get('set-cookie')).toMatch(/HttpOnly; SameSite=Strict/);
    const page = await (await fetch(`${served.url}/letters/${key}`, { headers: { cookie } })).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
    expect((await post(served.url, '/actions', replay, { cookie })).status).toBe(403);
    expect((await post(served.url, '/actions', { ...replay, _csrf: 'forged' }, { cookie })).status).toBe(403);
    expect((await post(served.url, '/actions', { ...replay, _csrf: csrf }, { cookie, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await post(served.url, '/actions', { ...replay, _csrf: csrf }, { cookie, origin: 'http://evil.example' })).status).toBe(403);
    expect((await post(served.url, '/actions', { action: 'discard', key, _csrf: csrf }, { cookie })).status).toBe(400); // a discard needs a reason
    expect(console_.inventory.letter(key)).toBeDefined(); // nothing above acted

    // Read-only: everything shown, no action offered, every action refused.
    const shown = await fetch(`${servedReadOnly.url}/letters/${readOnly.inventory.letter(key)!.letterKey}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(shown.status).toBe(200);
    expect(await shown.text()).not.toContain('value="replay"');
    expect((await post(servedReadOnly.url, '/actions', replay, { authorization: `Bearer ${TOKEN}` })).status).toBe(403);
    expect((await post(servedReadOnly.url, '/refresh', {}, { authorization: `Bearer ${TOKEN}` })).status).toBe(403);
  });

  it("signs operators in through the application's own hook (a proxy's header here): no hook identity, no page; actions still need the CSRF token", async () => {
    const hooked = new DeadLetterConsole({
      sources: console_.inventory.sources,
      authenticate: (request) => (request.headers['x-forwarded-user'] === 'bob' ? 'bob' : undefined),
      scanIntervalMs: 0,
    });
    await hooked.start();
    const server = await serveConsole(hooked);
    try {
      expect((await fetch(`${server.url}/`)).status).toBe(401);
      const page = await fetch(`${server.url}/`, { headers: { 'x-forwarded-user': 'bob' } });
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('bob');
      const csrf = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
      const refresh = (fields: Record<string, string>) =>
        fetch(`${server.url}/refresh`, {
          method: 'POST',
          headers: { 'x-forwarded-user': 'bob', 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(fields).toString(),
          redirect: 'manual',
        });
      expect((await refresh({})).status).toBe(403);
      expect((await refresh({ _csrf: csrf })).status).toBe(303);
    } finally {
      await server.close();
      await hooked.close();
    }
  });
});
