/**
 * SIGTERM as Kubernetes sends it when a pod stops: Paygress stops
 * accepting, answers the request already in flight, closes its store and
 * exits. A second signal during shutdown (Ctrl-C under `npm run dev` sends
 * two) leaves that shutdown to finish; a third stops at once. Runs
 * Paygress as a real process. A start that cannot complete says why in
 * one line and exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import {
  NODE,
  PAYGRESS_BIN,
  startPaygressProcess,
} from '../support/paygress-process.ts';
import { startStack } from '../support/stack.ts';
import { mintToken } from '../support/wallet.ts';
import { tempDir } from '../support/temp-dir.ts';

t.test('a request in flight at SIGTERM still gets its answer', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const dataDir = tempDir('paygress-sigterm-');
  const paygress = await startPaygressProcess({ mintUrl: mint.url, dataDir });
  t.teardown(() => paygress.kill());

  const token = await mintToken(mint.url, 100);
  mint.setFault('swap', { kind: 'delay', ms: 800 });
  const inFlight = fetch(`${paygress.base}/auth/forward`, {
    headers: { 'X-Cashu': token },
  });
  await new Promise((r) => setTimeout(r, 200));

  const stopped = paygress.stop();
  const response = await inFlight;
  await stopped;

  t.equal(response.status, 200, 'answered after SIGTERM arrived');
  t.equal(response.headers.get('x-payment-verified'), 'true');
  t.equal(paygress.running, false, 'the process exited');
  await t.rejects(fetch(`${paygress.base}/healthz`), 'no longer listening');

  const store = new SqliteWalletStore({ dataDir });
  t.teardown(() => store.close());
  t.same(
    store.balances().map((b) => b.available),
    [100],
    'the store was closed cleanly with the payment in it',
  );
  t.same(store.unfinished(), []);
});

/** A `paygress serve` on loopback ports, its log lines kept. */
interface Served {
  child: ChildProcess;
  base: string;
  /** The `msg` of each log line from "shutting down" on, decisions left out. */
  shutdownMessages(): string[];
  /** When (ms since epoch) the first line whose `msg` starts so was written. */
  loggedAt(prefix: string): number | undefined;
  /** Exit code and signal, once it exited (SIGKILL after 20 s). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function serveOnLoopback(
  t: Test,
  env: Record<string, string>,
): Promise<Served> {
  const child = spawn(NODE, [PAYGRESS_BIN, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_HTTP_HOST: '127.0.0.1',
      PAYGRESS_HTTP_PORT: '0',
      PAYGRESS_GRPC_HOST: '127.0.0.1',
      PAYGRESS_GRPC_PORT: '0',
      DEFAULT_PAYMENT_AMOUNT: '100',
      PAYGRESS_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: { msg?: string; http?: number; time?: string }[] = [];
  let partial = '';
  const listening = new Promise<number>((resolve) => {
    const take = (chunk: Buffer) => {
      const text = partial + chunk.toString('utf8');
      const complete = text.split('\n');
      partial = complete.pop() ?? '';
      for (const line of complete) {
        if (!line.startsWith('{')) continue;
        const parsed = JSON.parse(line) as { msg?: string; http?: number };
        lines.push(parsed);
        if (parsed.msg === 'paygress listening') resolve(parsed.http!);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const exited = once(child, 'exit').then(([code, signal]) => {
    clearTimeout(timer);
    return { code, signal } as {
      code: number | null;
      signal: NodeJS.Signals | null;
    };
  });
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
    await exited;
  });
  const port = await Promise.race([
    listening,
    exited.then(() => {
      throw new Error(`paygress exited: ${JSON.stringify(lines)}`);
    }),
  ]);
  return {
    child,
    base: `http://127.0.0.1:${port}`,
    loggedAt: (prefix) => {
      const time = lines.find((l) => l.msg?.startsWith(prefix))?.time;
      return time === undefined ? undefined : Date.parse(time);
    },
    shutdownMessages: () => {
      const messages = lines.map((l) => l.msg ?? '');
      const start = messages.indexOf('shutting down');
      if (start < 0) return [];
      return messages.slice(start).filter((m) => m !== 'decision');
    },
    exited,
  };
}

/**
 * Sends `signal` `count` times, as npm and a terminal do, each once
 * Paygress has answered the one before in its log: two signals sent close
 * together can reach a busy process as one (the kernel keeps one pending
 * signal of a kind), which would test nothing.
 */
async function signalRepeatedly(
  paygress: Served,
  signal: NodeJS.Signals,
  count: number,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    paygress.child.kill(signal);
    if (i === count - 1) break;
    for (let wait = 0; wait < 200; wait++) {
      if (paygress.shutdownMessages().length > i) break;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/**
 * A Paygress process on loopback with a dev mint whose swaps take
 * `swapMs`, and a payment sent to it 200 ms ago, still waiting on the mint.
 */
async function paymentUnderWay(
  t: Test,
  swapMs: number,
  env: Record<string, string> = {},
) {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const dataDir = tempDir('paygress-sigint-');
  const paygress = await serveOnLoopback(t, {
    PAYGRESS_MINTS: mint.url,
    PAYGRESS_DATA_DIR: dataDir,
    ...env,
  });
  const token = await mintToken(mint.url, 100);
  mint.setFault('swap', { kind: 'delay', ms: swapMs });
  const inFlight = fetch(`${paygress.base}/auth/forward`, {
    headers: { 'X-Cashu': token },
  });
  await new Promise((r) => setTimeout(r, 200));
  return { paygress, dataDir, inFlight };
}

t.test(
  'a second SIGINT during shutdown is ignored: the shutdown finishes',
  async (t) => {
    const { paygress, dataDir, inFlight } = await paymentUnderWay(t, 800);

    // One Ctrl-C under `npm run dev`: the terminal's SIGINT, then npm's.
    await signalRepeatedly(paygress, 'SIGINT', 2);
    const response = await inFlight;
    const { code, signal } = await paygress.exited;

    t.equal(response.status, 200, 'the request in flight got its answer');
    t.same({ code, signal }, { code: 0, signal: null }, 'exited 0 by itself');
    t.match(paygress.shutdownMessages(), [
      'shutting down',
      /^already shutting down, signal ignored/,
      'stopped',
    ]);
    t.notOk(
      existsSync(join(dataDir, 'wallet.sqlite-wal')),
      'the store was closed (its write-ahead log folded in)',
    );
    const store = new SqliteWalletStore({ dataDir });
    t.teardown(() => store.close());
    t.same(
      store.balances().map((b) => b.available),
      [100],
    );
    t.same(store.unfinished(), []);
  },
);

t.test(
  'a third signal stops at once, with the store closed and the payment kept',
  async (t) => {
    const underWay = await paymentUnderWay(t, 5000, {
      PAYGRESS_SHUTDOWN_GRACE_MS: '10000',
      PAYGRESS_LOG_REFUSAL_LIMIT: '1',
    });
    const { paygress, dataDir } = underWay;
    const inFlight = underWay.inFlight.then(
      (r) => r.status,
      () => 'cut',
    );
    // Refusals over the log's limit, their summary due at the end of the
    // second: the stop comes first.
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${paygress.base}/auth/forward`, {
        headers: { 'X-Forwarded-Uri': '/premium', 'X-Cashu': 'cashuBnot' },
      });
      await res.text();
    }

    const sent = Date.now();
    await signalRepeatedly(paygress, 'SIGTERM', 3);
    const { code, signal } = await paygress.exited;
    const took = Date.now() - sent;

    t.same(
      { code, signal },
      { code: 143, signal: null },
      'exits by itself with 128 + SIGTERM',
    );
    t.ok(took < 3000, `without waiting for the grace period (${took} ms)`);
    t.equal(await inFlight, 'cut', 'the request in flight was cut');
    const messages = paygress.shutdownMessages();
    const stopped = messages.findIndex((m) => m.startsWith('stopping at once'));
    const summary = messages.findIndex((m) =>
      m.startsWith('refusals not logged: over logRefusalLimit'),
    );
    t.ok(stopped > 0 && summary > 0, 'the stop and the summary are logged');
    // The refusals' window ends a second after the first one was logged;
    // a loaded machine may take longer than that to deliver three signals,
    // and the window's end then writes the summary before the stop does.
    const windowEnd = paygress.loggedAt('decision')! + 1000;
    if (paygress.loggedAt('stopping at once')! < windowEnd) {
      t.ok(summary > stopped, 'the summary held back, written by the stop');
    }
    t.notOk(
      existsSync(join(dataDir, 'wallet.sqlite-wal')),
      'the store was closed (its write-ahead log folded in)',
    );

    // The swap was written ahead: the next start settles it with the mint.
    const store = new SqliteWalletStore({ dataDir, serving: true });
    t.teardown(() => store.close());
    t.equal(store.unfinished().length, 1, 'the payment under way is kept');
  },
);

/**
 * Runs `paygress serve` on loopback with `env` added, expecting it to
 * fail on its own: its exit status, and the fatal messages of its output,
 * once every line is checked to be a JSON log line (no stack trace).
 */
async function failedStart(
  t: Test,
  env: Record<string, string>,
  /** A limit of address space for the process, in KiB (`ulimit -v`). */
  addressSpaceKiB?: number,
): Promise<{
  code: number | null;
  fatal: string[];
  fatalLines: Record<string, unknown>[];
}> {
  const [command, args] =
    addressSpaceKiB === undefined
      ? [NODE, [PAYGRESS_BIN, 'serve']]
      : [
          '/bin/sh',
          [
            '-c',
            `ulimit -v ${addressSpaceKiB} && exec "$0" "$@"`,
            NODE,
            PAYGRESS_BIN,
            'serve',
          ],
        ];
  const child = spawn(command, args, {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_HTTP_HOST: '127.0.0.1',
      PAYGRESS_HTTP_PORT: '0',
      PAYGRESS_GRPC_HOST: '127.0.0.1',
      PAYGRESS_GRPC_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  child.stderr.on('data', (chunk) => (out += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);

  const lines = out.split('\n').filter(Boolean);
  t.ok(
    lines.every((line) => line.startsWith('{')),
    'every line is a log line, no stack trace',
    { output: out },
  );
  const fatalLines = lines
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.level === 60);
  return {
    code,
    fatal: fatalLines.map((line) => String(line.msg)),
    fatalLines,
  };
}

t.test(
  'a port in use stops start-up with one line that names it',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    t.teardown(() => taken.close());
    const port = (taken.address() as AddressInfo).port;

    const { code, fatal } = await failedStart(t, {
      PAYGRESS_MINTS: mint.url,
      PAYGRESS_GRPC_PORT: String(port),
      PAYGRESS_DATA_DIR: tempDir('paygress-port-'),
    });
    t.equal(code, 1, 'exits on its own, with status 1');
    t.equal(fatal.length, 1);
    t.equal(
      fatal[0],
      `paygress could not start: gRPC cannot listen on 127.0.0.1:${port}: the address is in use (EADDRINUSE): another process listens there; change grpc.host or grpc.port (PAYGRESS_GRPC_HOST, PAYGRESS_GRPC_PORT)`,
    );

    const http = await failedStart(t, {
      PAYGRESS_MINTS: mint.url,
      PAYGRESS_HTTP_PORT: String(port),
      PAYGRESS_DATA_DIR: tempDir('paygress-port-'),
    });
    t.equal(http.code, 1);
    t.match(http.fatalLines, [
      {
        code: 'EADDRINUSE',
        msg: `paygress could not start: HTTP (forward-auth, auth_request) cannot listen on 127.0.0.1:${port}: the address is in use (EADDRINUSE): another process listens there; change http.host or http.port (PAYGRESS_HTTP_HOST, PAYGRESS_HTTP_PORT)`,
      },
    ]);
    t.notOk('err' in http.fatalLines[0]!, 'a setting to change, no stack');
  },
);

t.test(
  'a data directory that cannot be made stops start-up naming the setting',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const dir = mkdtempSync(join(tmpdir(), 'paygress-datadir-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'a-file');
    writeFileSync(file, '');

    for (const [dataDir, why] of [
      [file, 'it is a file, not a directory (EEXIST)'],
      [
        join(file, 'sub'),
        'a part of its path is a file, not a directory (ENOTDIR)',
      ],
    ] as const) {
      const { code, fatalLines } = await failedStart(t, {
        PAYGRESS_MINTS: mint.url,
        PAYGRESS_DATA_DIR: dataDir,
      });
      t.equal(code, 1);
      t.match(fatalLines, [
        {
          msg: `paygress could not start: the data directory ${dataDir} cannot be used: ${why}; set dataDir (PAYGRESS_DATA_DIR) to a directory Paygress can write`,
        },
      ]);
      t.notOk('err' in fatalLines[0]!, 'no stack');
    }
  },
);

t.test(
  'a second Paygress on a data directory in use stops at once',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const dataDir = tempDir('paygress-twice-');
    const first = await startStack({ mint, dataDir });
    t.teardown(() => first.close());

    const { code, fatal, fatalLines } = await failedStart(t, {
      PAYGRESS_MINTS: mint.url,
      PAYGRESS_MINT_ALLOW_HTTP: 'true',
      PAYGRESS_DATA_DIR: dataDir,
    });
    t.equal(code, 1);
    t.match(fatal, [
      `paygress could not start: ${dataDir} is in use by another Paygress process`,
    ]);
    t.notOk('err' in fatalLines[0]!, 'no stack: nothing to debug');
  },
);

t.test(
  'a replay cache the host cannot give stops start-up, named',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'paygress-replay-size-'));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    // 10^8 entries take some 2.6 GB; the process may have 2 GiB.
    const { code, fatalLines } = await failedStart(
      t,
      {
        PAYGRESS_MINTS: mint.url,
        PAYGRESS_MINT_ALLOW_HTTP: 'true',
        PAYGRESS_DATA_DIR: dataDir,
        PAYGRESS_REPLAY_CACHE_SIZE: '100000000',
      },
      2 * 1024 * 1024,
    );
    t.equal(code, 1);
    t.match(fatalLines, [
      {
        msg: /^paygress could not start: the replay cache of 100000000 entries cannot be allocated \(.+\); lower replay\.cacheSize \(PAYGRESS_REPLAY_CACHE_SIZE\) or give Paygress more memory$/,
      },
    ]);
    t.notOk('err' in (fatalLines[0] ?? {}), 'no stack');
  },
);

t.test(
  'a wallet store or lock file that is not one stops start-up, named',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    for (const [name, problem] of [
      [
        'wallet.sqlite',
        /wallet\.sqlite: is not a Paygress wallet store, or is damaged \(file is not a database\): restore it from a backup \(paygress wallet restore; docs\/wallet\.md\); never delete it, it may hold money$/,
      ],
      [
        'paygress.lock',
        /paygress\.lock cannot be locked \(file is not a database\): it is not a lock file Paygress made: move it out of the data directory$/,
      ],
    ] as const) {
      const dataDir = mkdtempSync(join(tmpdir(), 'paygress-notadb-'));
      t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
      writeFileSync(join(dataDir, name), 'not a database, '.repeat(64), {
        mode: 0o600,
      });
      const { code, fatal, fatalLines } = await failedStart(t, {
        PAYGRESS_MINTS: mint.url,
        PAYGRESS_MINT_ALLOW_HTTP: 'true',
        PAYGRESS_DATA_DIR: dataDir,
      });
      t.equal(code, 1, name);
      t.match(fatal, [problem]);
      t.notOk('err' in (fatalLines[0] ?? {}), 'no stack');
    }
  },
);

/**
 * Listens with `server` on the dev mint's fixed port, 127.0.0.1:3338; false
 * (and the test says it did not run) when something else has it.
 */
async function onDevMintPort(t: Test, server: Server): Promise<boolean> {
  const free = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(3338, '127.0.0.1', () => resolve(true));
  });
  if (!free) t.comment('127.0.0.1:3338 is in use here; not run');
  return free;
}

t.test('with logging off, a failed start still says why', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-datadir-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  const child = spawn(NODE, [PAYGRESS_BIN, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_LOG_LEVEL: 'silent',
      PAYGRESS_MINTS: 'http://127.0.0.1:9',
      PAYGRESS_DATA_DIR: file,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  child.stderr.on('data', (chunk) => (err += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 1);
  t.equal(out, '');
  t.match(
    err,
    /^paygress could not start: the data directory .* cannot be used: it is a file/,
  );
});

t.test(
  'another server on the dev mint port is refused, not trusted',
  async (t) => {
    const other = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"name":"someone else\'s mint","version":"nutshell/0.16"}');
    });
    if (!(await onDevMintPort(t, other))) return;
    t.teardown(() => new Promise((resolve) => other.close(resolve)));

    const { code, fatal } = await failedStart(t, {
      PAYGRESS_DEV_MINT: 'true',
      PAYGRESS_DATA_DIR: tempDir('paygress-devmint-'),
    });
    t.equal(code, 1);
    t.match(fatal, [
      /^paygress could not start: http:\/\/127\.0\.0\.1:3338 is taken by a server that is not the Paygress dev mint \(it says "someone else's mint", version "nutshell\/0\.16"\)/,
    ]);
  },
);

t.test(
  'a dev mint that cannot start: one line from each, exit 1',
  async (t) => {
    // The dev mint's port is fixed; this needs it free.
    const probe = createServer();
    if (!(await onDevMintPort(t, probe))) return;
    await new Promise((resolve) => probe.close(resolve));

    const dataDir = tempDir('paygress-devmint-');
    writeFileSync(join(dataDir, 'devmint.json'), '{not json');
    const { code, fatal } = await failedStart(t, {
      PAYGRESS_DEV_MINT: 'true',
      PAYGRESS_DATA_DIR: dataDir,
    });
    t.equal(code, 1);
    t.match(fatal, [
      /^dev mint could not start: /,
      /^paygress could not start: the dev mint did not start/,
    ]);
  },
);
