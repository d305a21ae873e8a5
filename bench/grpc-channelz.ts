/**
 * What grpc-js's channelz bookkeeping costs per unary call: a bare grpc-js
 * server (the Check path, an empty answer) with channelz on (the default,
 * and Paygress's setting), with `grpc.enable_channelz: 0`, and with it off
 * behind a connection injector on a listener of its own (the only way to
 * keep forced shutdown working with it off in grpc-js 1.14). Each variant
 * is a fresh child process loaded by h2load with a fixed number of calls;
 * the result is the child's CPU time (user + system, /proc) per call,
 * which other load on the machine disturbs far less than throughput.
 *
 *   node_modules/.bin/node bench/grpc-channelz.ts [--calls 100000] [--rounds 3]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import {
  bareCheckDefinition,
  bareCheckImplementation,
} from './lib/bare-check.ts';
import { cpuMs, h2loadCalls } from './lib/cpu.ts';
import { CHECK_PATH, checkRequest, frame } from './lib/fixtures.ts';

const VARIANTS = ['channelz on', 'channelz off', 'off, injector'] as const;
type Variant = (typeof VARIANTS)[number];

const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    calls: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '3' },
  },
});

if (values.serve !== undefined) {
  serve(values.serve as Variant);
} else {
  await measure(Number(values.calls), Number(values.rounds));
}

function serve(variant: Variant): void {
  const server = new grpc.Server(
    variant === 'channelz on' ? {} : { 'grpc.enable_channelz': 0 },
  );
  server.addService(bareCheckDefinition, bareCheckImplementation);
  const ready = (port: number) => process.stdout.write(`${port}\n`);
  if (variant === 'off, injector') {
    const injector = server.createConnectionInjector(
      grpc.ServerCredentials.createInsecure(),
    );
    const listener = createServer({ noDelay: true }, (socket) =>
      injector.injectConnection(socket),
    );
    listener.listen(0, '127.0.0.1', () =>
      ready((listener.address() as AddressInfo).port),
    );
  } else {
    server.bindAsync(
      '127.0.0.1:0',
      grpc.ServerCredentials.createInsecure(),
      (err, port) => {
        if (err) throw err;
        ready(port);
      },
    );
  }
}

async function measure(calls: number, rounds: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-channelz-'));
  const body = join(dir, 'check.bin');
  writeFileSync(body, frame(checkRequest('/premium')));
  const perCall: Record<Variant, number[]> = {
    'channelz on': [],
    'channelz off': [],
    'off, injector': [],
  };
  try {
    for (let round = 0; round < rounds; round++) {
      for (const variant of VARIANTS) {
        perCall[variant].push(await cpuPerCall(variant, body, calls));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const variant of VARIANTS) {
    const us = perCall[variant].map((v) => v.toFixed(1)).join(', ');
    process.stdout.write(`${variant}: ${us} µs CPU per call\n`);
  }
}

async function cpuPerCall(
  variant: Variant,
  body: string,
  calls: number,
): Promise<number> {
  const child = spawn(
    process.execPath,
    [new URL(import.meta.url).pathname, '--serve', variant],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const url = `http://127.0.0.1:${String(line).trim()}${CHECK_PATH}`;
    await h2loadCalls(url, body, 5000); // warm-up
    const before = cpuMs(child.pid!);
    await h2loadCalls(url, body, calls);
    return ((cpuMs(child.pid!) - before) * 1000) / calls;
  } finally {
    child.kill();
  }
}
