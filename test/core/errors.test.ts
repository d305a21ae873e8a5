import t from 'tap';
import {
  InternalError,
  MintUnavailableError,
  TokenMalformedError,
  TokenReplayedError,
  toPaygressError,
} from '../../src/core/errors.ts';

const frames = (err: Error) =>
  (err.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line)).length;

t.test('a refusal of the payer’s making carries no stack', async (t) => {
  const replayed = new TokenReplayedError('token already spent');
  t.equal(frames(replayed), 0);
  t.equal(replayed.code, 'PAYGRESS_TOKEN_REPLAYED');
  t.equal(replayed.fault, 'payer');
  t.equal(replayed.message, 'token already spent');
  t.match(replayed.stack, /token already spent/);

  // The cause keeps its own stack: it may be a fault of a library's.
  const cause = new Error('cbor ended early');
  const malformed = new TokenMalformedError('token could not be decoded', {
    cause,
  });
  t.equal(frames(malformed), 0);
  t.equal(malformed.cause, cause);
  t.ok(frames(cause) > 0);
});

t.test('a fault of ours keeps its stack', async (t) => {
  t.ok(frames(new MintUnavailableError('the mint timed out')) > 0);
  t.ok(frames(new InternalError('bug')) > 0);
  t.ok(frames(toPaygressError(new Error('thrown by a bug'))) > 0);
});

t.test('the stack limit is left as it was', async (t) => {
  const before = Error.stackTraceLimit;
  new TokenReplayedError('spent');
  new InternalError('ours');
  t.equal(Error.stackTraceLimit, before);
  t.ok(frames(new Error('after')) > 0);

  Error.stackTraceLimit = 3;
  try {
    new TokenReplayedError('spent');
    t.equal(Error.stackTraceLimit, 3);
  } finally {
    Error.stackTraceLimit = before;
  }
});
