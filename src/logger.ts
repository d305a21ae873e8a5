/**
 * The process logger: pino, JSON, one line per event. Token-bearing headers
 * are never logged on purpose; `redact` is the second line of defence if a
 * header object ever reaches a log call.
 */
import pino, { type Logger, type LevelWithSilent } from 'pino';
import { redactSecrets } from './core/redact.ts';

/** Paths censored in every log line, whatever logs them. */
export const REDACT_PATHS = [
  'authorization',
  'cookie',
  'token',
  'proofs[*].secret',
  'headers.authorization',
  'headers["x-cashu"]',
  'headers.cookie',
  'headers["set-cookie"]',
  'req.headers.authorization',
  'req.headers["x-cashu"]',
  'req.headers.cookie',
  '*.headers.authorization',
  '*.headers["x-cashu"]',
  '*.headers.cookie',
];

/** A logger writing JSON lines to stdout (or `destination`). */
export function createLogger(
  level: LevelWithSilent,
  destination?: pino.DestinationStream,
): Logger {
  const options = {
    level,
    base: { service: 'paygress' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: redactedError },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // Asynchronous writes: lines written in one turn of the event loop go
  // out together instead of one synchronous write each, which was a fifth
  // of the cost of a refusal. main flushes on shutdown; a kill -9 can lose
  // the lines of the last moment, never a payment.
  return pino(options, destination ?? pino.destination({ sync: false }));
}

/**
 * An error as pino writes it, with any token or proof secret in its text
 * (its message, stack, causes and other fields) taken out: `redact`
 * censors fields by name, and a message may quote what a mint or a parser
 * was given. A copy: the caller's error and what hangs on it are left as
 * they are. Whatever is thrown, not only an Error, goes the same way.
 */
function redactedError(value: unknown): unknown {
  try {
    return redactedCopy(pino.stdSerializers.err(value as Error), 0);
  } catch {
    // Reading it threw (a getter of a library's error, say): a line
    // without the error beats a lost line, or a throw where the caller
    // was handling a failure.
    return { type: typeOf(value), message: '[the error could not be read]' };
  }
}

function typeOf(value: unknown): string {
  try {
    return value instanceof Error ? value.constructor.name : typeof value;
  } catch {
    return 'unknown';
  }
}

/** How deep a logged error's fields are followed; deeper is left out. */
const MAX_ERROR_DEPTH = 6;

function redactedCopy(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_ERROR_DEPTH) return '[nested too deep]';
  if (Array.isArray(value)) {
    return value.map((item) => redactedCopy(item, depth + 1));
  }
  const copy: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    copy[key] = redactedCopy(field, depth + 1);
  }
  return copy;
}

/**
 * A logger writing to `logger`'s destination at its level and with its
 * bindings, but without redaction: only for lines whose every field the
 * caller chose and none of which can carry a secret.
 */
export function withoutRedaction(logger: Logger): Logger {
  const stream = (logger as unknown as Record<symbol, pino.DestinationStream>)[
    pino.symbols.streamSym
  ];
  return pino(
    {
      level: logger.level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    stream,
  ).child(logger.bindings());
}
