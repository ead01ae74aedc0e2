/**
 * Hostile inputs for tests: thrown values the pipeline cannot take at face value, and forged control
 * headers a producer can set. Used by the conformance suite on every transport.
 */

/** Values a handler might throw, each breaking a naive `error.message` / `String(error)` somewhere. */
export function hostileThrownValues(): { name: string; value: unknown }[] {
  const cyclic: Record<string, unknown> = { name: 'Cyclic' };
  cyclic.self = cyclic;
  const stackNotString = new Error('stack is an object');
  Object.defineProperty(stackNotString, 'stack', { value: { frames: [1, 2, 3] } });
  const throwingStack = new Error('stack getter throws');
  Object.defineProperty(throwingStack, 'stack', {
    get() {
      throw new Error('no stack for you');
    },
  });
  const throwingRetryable = Object.defineProperty(new Error('retryable getter throws'), 'retryable', {
    get() {
      throw new Error('undecidable');
    },
  });
  const throwingToString = {
    toString() {
      throw new Error('toString throws');
    },
    toJSON() {
      throw new Error('toJSON throws');
    },
  };
  const throwingName = Object.defineProperty(new Error('name getter throws'), 'name', {
    get() {
      throw new Error('nameless');
    },
  });
  const proxy = new Proxy(
    {},
    {
      get() {
        throw new Error('proxy get');
      },
      getPrototypeOf() {
        throw new Error('proxy prototype');
      },
      ownKeys() {
        throw new Error('proxy keys');
      },
    },
  );
  const nullProto = Object.create(null) as object;
  return [
    { name: 'undefined', value: undefined },
    { name: 'null', value: null },
    { name: 'a string', value: 'plain string failure' },
    { name: 'a number', value: 42 },
    { name: 'a symbol', value: Symbol('failure') },
    { name: 'a bigint', value: 10n ** 30n },
    { name: 'a cyclic object', value: cyclic },
    { name: 'an Error whose stack is not a string', value: stackNotString },
    { name: 'an Error whose stack getter throws', value: throwingStack },
    { name: 'an Error whose retryable getter throws', value: throwingRetryable },
    { name: 'an Error whose name getter throws', value: throwingName },
    { name: 'an object whose toString and toJSON throw', value: throwingToString },
    { name: 'a Proxy that throws on every access', value: proxy },
    { name: 'an object without prototype', value: nullProto },
    { name: 'a 1 MB message', value: new Error('x'.repeat(1_000_000)) },
  ];
}

/**
 * Control headers a producer can forge (string values, as every transport carries them). None may add
 * handler calls, move a dead letter's origin, or break the dead-letter publish.
 */
export function forgedControlHeaders(): { name: string; headers: Record<string, string> }[] {
  return [
    { name: 'attempt 99', headers: { 'x-sb-attempt': '99' } },
    { name: 'attempt -5', headers: { 'x-sb-attempt': '-5' } },
    { name: 'attempt abc', headers: { 'x-sb-attempt': 'abc' } },
    { name: 'delivery count 50', headers: { 'x-delivery-count': '50' } },
    { name: 'topic elsewhere', headers: { 'x-sb-topic': 'payments.elsewhere' } },
    { name: 'timestamp abc', headers: { 'x-sb-timestamp': 'abc' } },
    { name: 'timestamp 1e30', headers: { 'x-sb-timestamp': '1e30' } },
    { name: 'timestamp -5', headers: { 'x-sb-timestamp': '-5' } },
    { name: 'dead-letter origin', headers: { 'x-dlq-original-topic': 'payments.elsewhere', 'x-dlq-original-partition': '7', 'x-dlq-original-offset': '99999', 'x-dlq-original-group': 'other' } },
  ];
}
