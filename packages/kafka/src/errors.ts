/** Errors of both drivers recognised by their codes and names (a driver's module may not be loaded). */

/** A network failure or timeout of @platformatic/kafka, alone or among the errors of its retries (by code: the module may not be loaded). */
export function isPlatformaticNetworkError(error: unknown): boolean {
  for (let e = error as { cause?: unknown; code?: unknown; errors?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === 'PLT_KFK_NETWORK' || e.code === 'PLT_KFK_TIMEOUT') return true;
    if (e.code === 'PLT_KFK_MULTIPLE' && Array.isArray(e.errors) && e.errors.some(isPlatformaticNetworkError)) return true;
  }
  return false;
}

const TOO_LARGE_CODES: ReadonlySet<unknown> = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

type ErrorFields = { type?: unknown; apiId?: unknown; cause?: unknown; errors?: unknown };

/** Whether `test` holds for `error` or any error in its causes and aggregated `errors`, at most 5 levels deep. */
function inErrorTree(error: unknown, test: (e: ErrorFields) => boolean, depth = 0): boolean {
  if (depth > 5 || typeof error !== 'object' || error === null) return false;
  const e = error as ErrorFields;
  if (test(e)) return true;
  if (Array.isArray(e.errors) && e.errors.some((inner) => inErrorTree(inner, test, depth + 1))) return true;
  return inErrorTree(e.cause, test, depth + 1);
}

/** The broker refused a record (batch) for its size, with either driver: kafkajs' `type`, @platformatic/kafka's `apiId`, among causes and aggregated errors. */
export function isKafkaTooLarge(error: unknown): boolean {
  return inErrorTree(error, (e) => TOO_LARGE_CODES.has(e.type) || TOO_LARGE_CODES.has(e.apiId));
}

/**
 * The broker answered that it does not know the topic or partition (UNKNOWN_TOPIC_OR_PARTITION), with
 * either driver: e.g. right after the topic was created, while the metadata the producer asked for
 * had not caught up (seen in CI: kafkajs gave up after 3 retries in 718 ms).
 */
export function isUnknownTopic(error: unknown): boolean {
  return inErrorTree(error, (e) => e.type === 'UNKNOWN_TOPIC_OR_PARTITION' || e.apiId === 'UNKNOWN_TOPIC_OR_PARTITION');
}

/** A protocol error code (`apiId`, e.g. TOPIC_ALREADY_EXISTS) anywhere in a @platformatic/kafka error, its causes and aggregated errors. */
export function hasPlatformaticCode(error: unknown, apiId: string): boolean {
  return inErrorTree(error, (e) => e.apiId === apiId);
}

/** Broker codes saying a newer producer with the same transactional id exists: this one is a zombie. */
const FENCED_TYPES: ReadonlySet<unknown> = new Set(['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH', 'INVALID_PRODUCER_ID_MAPPING']);
/** Their numeric codes (kafkajs 2.2.4 does not name PRODUCER_FENCED, code 90). */
const FENCED_CODES: ReadonlySet<unknown> = new Set([47, 49, 90]);

/** The transactional producer was fenced (another member owns its partition now), with either driver. */
export function isProducerFenced(error: unknown): boolean {
  return inErrorTree(error, (e) => FENCED_TYPES.has(e.type) || FENCED_TYPES.has(e.apiId) || FENCED_CODES.has((e as { code?: unknown }).code));
}
