/**
 * Turning whatever a handler threw into something the pipeline can record. Handlers may throw any
 * value: a non-Error, `undefined`, a cyclic object, an object whose getters or `toString` throw, a
 * megabyte-long message. Nothing here ever throws, and every string it returns is bounded.
 */

/** A thrown value, described: bounded strings only, safe to put in headers, logs and databases. */
export interface FailureDescription {
  /** Error name (`Error`, `TypeError`, ...) or the thrown value's type (`string`, `undefined`, `object`). */
  readonly name: string;
  readonly message: string;
  /** Stack trace, empty when there is none. */
  readonly stack: string;
}

const UNPRINTABLE = '[unprintable value]';

/** Longest name kept, in characters. */
const NAME_LIMIT = 200;

/** Reads `object[property]`, or undefined when the read throws (a hostile getter or proxy). */
export function safeGet(object: unknown, property: string): unknown {
  if ((typeof object !== 'object' && typeof object !== 'function') || object === null) return undefined;
  try {
    return (object as Record<string, unknown>)[property];
  } catch {
    return undefined;
  }
}

/** Cuts `text` to `limit` characters, marking the cut. */
export function truncate(text: string, limit: number): string {
  if (text.length <= limit) return text;
  const marker = '…[truncated]';
  return limit <= marker.length ? text.slice(0, Math.max(0, limit)) : `${text.slice(0, limit - marker.length)}${marker}`;
}

function isError(value: unknown): boolean {
  try {
    return value instanceof Error;
  } catch {
    return false; // a Proxy whose getPrototypeOf trap throws
  }
}

/** `String(value)` that never throws (a `toString` that throws or returns a non-string gives a placeholder). */
export function safeString(value: unknown, limit: number): string {
  try {
    if (typeof value === 'string') return truncate(value, limit);
    if (typeof value === 'symbol') return truncate(value.toString(), limit);
    if (typeof value === 'object' && value !== null && !isError(value)) {
      const json = JSON.stringify(value);
      if (typeof json === 'string') return truncate(json, limit);
    }
    const text = String(value);
    return truncate(typeof text === 'string' ? text : UNPRINTABLE, limit);
  } catch {
    return truncate(UNPRINTABLE, limit);
  }
}

/** Describes a thrown value in bounded strings; never throws. */
export function describeFailure(error: unknown, limit: number): FailureDescription {
  if (isError(error)) {
    const name = safeGet(error, 'name');
    const message = safeGet(error, 'message');
    const stack = safeGet(error, 'stack');
    return {
      name: truncate(typeof name === 'string' && name !== '' ? name : 'Error', NAME_LIMIT),
      message: typeof message === 'string' ? truncate(message, limit) : safeString(message, limit),
      stack: typeof stack === 'string' ? truncate(stack, limit) : '',
    };
  }
  const type = error === null ? 'null' : typeof error;
  if (type === 'object') {
    // An error-like object (e.g. from another realm, or a plain { name, message }).
    const name = safeGet(error, 'name');
    const message = safeGet(error, 'message');
    if (typeof message === 'string') {
      const stack = safeGet(error, 'stack');
      return {
        name: truncate(typeof name === 'string' && name !== '' ? name : 'object', NAME_LIMIT),
        message: truncate(message, limit),
        stack: typeof stack === 'string' ? truncate(stack, limit) : '',
      };
    }
  }
  return { name: type, message: safeString(error, limit), stack: '' };
}
