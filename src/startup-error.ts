/**
 * A start-up failure the operator fixes in the configuration or on the
 * host (a port in use, a data directory that cannot be made): its message
 * says what failed, why and which setting to change, so it is logged as
 * one line without a stack.
 */
export class StartupError extends Error {
  /** The system error's code (`EADDRINUSE`, `ENOTDIR`, ...), if any. */
  readonly code: string | undefined;

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'StartupError';
    this.code = systemCode(options.cause);
  }
}

/** The code of a Node system error (`err.code`), at most one cause deep. */
export function systemCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; depth < 2; depth++) {
    if (typeof e !== 'object' || e === null) return undefined;
    const code = (e as { code?: unknown }).code;
    // `EADDRINUSE`, `ENOENT`...; not Node's own `ERR_*` (a bug's, mostly).
    if (typeof code === 'string' && /^E(?!RR_)[A-Z_]+$/.test(code)) {
      return code;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
