import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed control headers, for deployments whose producers are not trusted. An adapter writes its
 * control values (attempt, original topic, timestamp...) together with an HMAC-SHA256 over them and
 * the message id, keyed by a secret only Switchboard processes hold; on receipt it uses those values
 * only when the signature verifies. A producer without the key can neither forge nor replay a value
 * onto another message (the id is part of what is signed).
 */
export interface ControlSigner {
  /** Signature of `fields` (in order) for message `id`. */
  sign(id: string, fields: readonly string[]): string;
  /** True when `signature` is the signature of `fields` for `id`. Constant time; never throws. */
  verify(id: string, fields: readonly string[], signature: unknown): boolean;
}

/** Header carrying the signature of an adapter's control headers. */
export const SIGNATURE_HEADER = 'x-sb-sig';

/** An HMAC-SHA256 signer. `key`: at least 16 bytes of secret (never logged, never sent). */
export function createControlSigner(key: string | Uint8Array): ControlSigner {
  const secret = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key);
  if (secret.length < 16) throw new RangeError('signing key must be at least 16 bytes');
  const mac = (id: string, fields: readonly string[]) => {
    const hmac = createHmac('sha256', secret);
    // Length-prefixed, so field boundaries cannot be shifted.
    for (const part of [id, ...fields]) hmac.update(`${Buffer.byteLength(part)}:${part};`);
    return hmac.digest();
  };
  return {
    sign: (id, fields) => mac(id, fields).toString('base64url'),
    verify: (id, fields, signature) => {
      if (typeof signature !== 'string' || signature.length > 128) return false;
      const given = Buffer.from(signature, 'base64url');
      const expected = mac(id, fields);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}
