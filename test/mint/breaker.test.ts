import t from 'tap';
import { MintBreaker } from '../../src/mint/breaker.ts';

const fail = () => Promise.reject(new Error('down'));
const ok = () => Promise.resolve('ok');
const always = () => true;

t.test(
  'opens after the threshold, fails fast, probes after the cooldown',
  async (t) => {
    let now = 0;
    const breaker = new MintBreaker({
      failureThreshold: 3,
      cooldownMs: 1000,
      now: () => now,
    });
    let calls = 0;
    const counted = () => {
      calls++;
      return fail();
    };

    for (let i = 0; i < 3; i++)
      await t.rejects(breaker.run(counted, always), /down/);
    t.equal(breaker.state, 'open');

    await t.rejects(breaker.run(counted, always), {
      code: 'PAYGRESS_MINT_UNAVAILABLE',
      notSent: true,
    });
    t.equal(calls, 3, 'the open circuit sent nothing');

    now = 1000;
    t.equal(breaker.state, 'half-open');
    await t.rejects(
      breaker.run(counted, always),
      /down/,
      'one probe goes through',
    );
    t.equal(calls, 4);
    t.equal(breaker.state, 'open', 'a failed probe opens it again');

    now = 2999;
    t.equal(breaker.state, 'open', 'for twice the cooldown');
    now = 3000;
    t.equal(await breaker.run(ok, always), 'ok');
    t.equal(breaker.state, 'closed', 'a good probe closes it');
  },
);

t.test('only one probe at a time while half-open', async (t) => {
  let now = 0;
  const breaker = new MintBreaker({
    failureThreshold: 1,
    cooldownMs: 10,
    now: () => now,
  });
  await t.rejects(breaker.run(fail, always));
  now = 10;
  let release!: () => void;
  const slow = breaker.run(
    () => new Promise<string>((r) => (release = () => r('ok'))),
    always,
  );
  await t.rejects(breaker.run(ok, always), {
    code: 'PAYGRESS_MINT_UNAVAILABLE',
    notSent: true,
  });
  release();
  t.equal(await slow, 'ok');
  t.equal(breaker.state, 'closed');
});

t.test('refusals by a live mint do not count as failures', async (t) => {
  const breaker = new MintBreaker({ failureThreshold: 2 });
  for (let i = 0; i < 5; i++) {
    await t.rejects(breaker.run(fail, () => false));
  }
  t.equal(breaker.state, 'closed');
});

t.test('bounds concurrency and the queue', async (t) => {
  const breaker = new MintBreaker({ maxConcurrent: 2, maxQueued: 1 });
  let active = 0;
  let peak = 0;
  const releases: Array<() => void> = [];
  const held = () =>
    new Promise<void>((resolve) => {
      active++;
      peak = Math.max(peak, active);
      releases.push(() => {
        active--;
        resolve();
      });
    });

  const a = breaker.run(held, always);
  const b = breaker.run(held, always);
  const c = breaker.run(held, always);
  await t.rejects(
    breaker.run(held, always),
    {
      code: 'PAYGRESS_MINT_UNAVAILABLE',
      notSent: true,
    },
    'beyond the queue: refused at once',
  );

  await new Promise((r) => setImmediate(r));
  t.equal(releases.length, 2, 'two in flight, one waiting');
  releases.shift()!();
  await a;
  await new Promise((r) => setImmediate(r));
  t.equal(releases.length, 2, 'the waiting one took the slot');
  releases.shift()!();
  releases.shift()!();
  await Promise.all([b, c]);
  t.equal(peak, 2);
});

t.test(
  'a call that waited for a slot is not sent once the circuit opened',
  async (t) => {
    const breaker = new MintBreaker({ maxConcurrent: 2, failureThreshold: 2 });
    let calls = 0;
    const failers: Array<() => void> = [];
    const hung = () =>
      new Promise<never>((_, reject) => {
        calls++;
        failers.push(() => reject(new Error('timeout')));
      });
    const a = breaker.run(hung, always);
    const b = breaker.run(hung, always);
    const queued = breaker.run(hung, always);
    await new Promise((r) => setImmediate(r));
    t.equal(calls, 2, 'two in flight, one waiting');

    // Both time out: the circuit opens while the third waits.
    for (const fail of failers.splice(0)) fail();
    await t.rejects(a, /timeout/);
    await t.rejects(b, /timeout/);
    await t.rejects(queued, {
      code: 'PAYGRESS_MINT_UNAVAILABLE',
      notSent: true,
    });
    t.equal(calls, 2, 'the waiting call never reached the mint');
    t.equal(breaker.state, 'open');
  },
);
