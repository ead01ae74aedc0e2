/**
 * Races `promise` against an absolute `deadline` (ms since the epoch): rejects with `error()` when the
 * deadline passes first. The promise itself is not cancelled; its late outcome is ignored.
 */
export function withDeadline<T>(promise: Promise<T>, deadline: number, error: () => Error): Promise<T> {
  const remaining = deadline - Date.now();
  if (remaining <= 0) {
    promise.catch(() => undefined);
    return Promise.reject(error());
  }
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(error()), remaining);
    }),
  ]);
}
