import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { type Bus, createBus, NonRetryableError, type Transport } from '@switchboard/core';
import { Recorder } from '@switchboard/core/testing';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Why the browser tests cannot run here, or undefined. */
export const noBrowser = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (scripts/chromium.sh installs Debian's chromium as root)`;

/** Screenshots land here (test artefacts; one is copied into docs/ for the README). */
export const ARTEFACTS = fileURLToPath(new URL('../../../test-results/console/', import.meta.url));

export async function launchBrowser(): Promise<Browser> {
  await mkdir(ARTEFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/`);
  if (!page.url().endsWith('/login')) throw new Error(`expected the login page, got ${page.url()}`);
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL(`${url}/`), page.click('button:has-text("Sign in")')]);
}

export const TOKEN = 'console-test-token-0123456789abcdef';

/** The error most letters fail with: one fingerprint whatever the order and customer. */
export const notFound = (n: number) => new NonRetryableError(`order ${n} not found for customer "c-${n}"`);

/**
 * A bus on `transport` whose `topic` subscription (group `billing` where the transport has groups) fails while `state.failing`:
 * every third message with a TypeError (retried once), the others NonRetryable. Records handled ids.
 */
export async function failingSubscription(transport: Transport, topic: string): Promise<{ bus: Bus; handled: Recorder<string>; values: Map<string, unknown>; state: { failing: boolean } }> {
  const bus = createBus({ transport });
  const handled = new Recorder<string>();
  const state = { failing: true };
  const values = new Map<string, unknown>();
  await bus.subscriber.subscribe(
    topic,
    (m: { id: string; value: { n: number } }) => {
      if (state.failing) {
        if (m.value.n % 3 === 0) throw new TypeError(`Cannot read properties of undefined (reading 'street') in order ${m.value.n}`);
        throw notFound(m.value.n);
      }
      values.set(m.id, m.value);
      handled.add(m.id);
    },
    {
      ...(transport.capabilities.consumerGroups ? { group: 'billing' } : {}),
      ...(transport.capabilities.replay ? { startFrom: 'earliest' as const } : {}),
      retry: { maxAttempts: 2, initialIntervalMs: 10 },
    },
  );
  return { bus, handled, values, state };
}

/** The text of the first element `selector` finds on `page` now, or null (none yet, or the page is reloading). */
export async function textNow(page: Page, selector: string): Promise<string | null> {
  return page
    .locator(selector)
    .first()
    .textContent({ timeout: 1000 })
    .catch(() => null);
}
