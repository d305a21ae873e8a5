/**
 * The process logger: pino, JSON, one line per event. Token-bearing headers
 * are never logged on purpose; `redact` is the second line of defence if a
 * header object ever reaches a log call.
 */
import pino, { type Logger, type LevelWithSilent } from 'pino';

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
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // Asynchronous writes: lines written in one turn of the event loop go
  // out together instead of one synchronous write each, which was a fifth
  // of the cost of a refusal. main flushes on shutdown; a kill -9 can lose
  // the lines of the last moment, never a payment.
  return pino(options, destination ?? pino.destination({ sync: false }));
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
