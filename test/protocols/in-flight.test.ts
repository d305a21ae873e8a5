/**
 * Shutdown waits on InFlight for every answer still being worked on,
 * those begun while it waits included.
 */
import t from 'tap';
import { InFlight } from '../../src/protocols/in-flight.ts';

/** Whether `promise` has settled after the queued callbacks have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

t.test('idle at once with nothing running', async (t) => {
  t.ok(await settled(new InFlight().idle()));
});

t.test('idle waits for every answer begun, however begun', async (t) => {
  const running = new InFlight();
  running.begin();
  let finish!: () => void;
  running.track(new Promise<void>((resolve) => (finish = resolve)));
  const idle = running.idle();

  running.end();
  t.notOk(await settled(idle), 'a tracked answer is still running');
  // Begun while shutdown waits: it must be waited for too.
  running.begin();
  finish();
  t.notOk(await settled(idle), 'one begun while waiting is still running');
  running.end();
  t.ok(await settled(idle), 'idle once the last has ended');
  t.ok(await settled(running.idle()), 'and at once afterwards');
});

t.test('a failed answer counts as ended', async (t) => {
  const running = new InFlight();
  const failed = Promise.reject(new Error('lost'));
  running.track(failed);
  await failed.catch(() => undefined);
  t.ok(await settled(running.idle()));
});
