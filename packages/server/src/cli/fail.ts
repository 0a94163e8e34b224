/**
 * How every `herald` command fails: one line on stderr, `herald <command>: <why>`, and a non-zero
 * exit code — never a stack trace. Code 2 is a usage error (a bad flag, argument or input file),
 * code 1 a failure at run time (server unreachable or refusing, invalid token or config).
 */
export const USAGE = 2;
export const FAILURE = 1;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = FAILURE,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Multi-line messages (a list of config problems) become one line. */
export function oneLine(message: string): string {
  return message
    .split('\n')
    .map((s) => s.trim().replace(/^- /, ''))
    .filter(Boolean)
    .join('; ')
    .replace(/:;/g, ':');
}

/** The message of anything thrown, with a network error's cause (`ECONNREFUSED …`) rather than `fetch failed`. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  if (err.message === 'fetch failed' && cause instanceof Error) {
    const inner = (cause as { errors?: Error[] }).errors?.[0] ?? cause;
    return inner.message || (cause as { code?: string }).code || cause.message;
  }
  return err.message;
}

export function parseJson(what: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new CliError(`${what} is not valid JSON: ${(err as Error).message}`, USAGE);
  }
}
