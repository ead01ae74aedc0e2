import type { ZodError, ZodType } from 'zod';
import { ConfigError } from '../ports/errors.js';

/**
 * Turns zod issues into a {@link ConfigError} naming each field path (under `pathPrefix`) and, for
 * unknown keys, the keys. `variablesFor(path)` may name the environment variables behind a value
 * (config loading does); they are added as "(set by …)".
 */
export function configErrorFromZod(error: ZodError, pathPrefix = '', variablesFor: (path: string) => readonly string[] = () => []): ConfigError {
  return new ConfigError(
    error.issues.map((issue) => {
      const path = [pathPrefix, ...issue.path.map(String)].filter(Boolean).join('.');
      let message = issue.message;
      const variables = issue.code === 'unrecognized_keys' ? issue.keys.flatMap((k) => variablesFor([path, k].filter(Boolean).join('.'))) : variablesFor(path);
      if (issue.code === 'unrecognized_keys') message = `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      if (variables.length > 0) message += ` (set by ${variables.join(', ')})`;
      return { path, message };
    }),
  );
}

/**
 * Parses options with `schema`; refused values become a {@link ConfigError} naming each field (under
 * `pathPrefix`), not a raw ZodError. For an adapter's `create…Transport(options)` and `subscribe()` options.
 */
export function parseOptions<T>(schema: ZodType<T>, input: unknown, pathPrefix = ''): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw configErrorFromZod(parsed.error, pathPrefix);
  return parsed.data;
}
