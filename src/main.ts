/**
 * `paygress serve`: loads the configuration, starts Paygress (and the dev
 * mint when configured), and shuts down cleanly on SIGTERM or SIGINT; a
 * third signal during shutdown stops it at once.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { startApp, type App } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import {
  startDevMintProcess,
  type DevMintProcess,
} from './dev-mint-process.ts';
import { createLogger } from './logger.ts';
import { StartupError } from './startup-error.ts';
import { makeDataDir } from './store/data-dir.ts';
import { redactSecrets } from './core/redact.ts';

/** Runs Paygress until a signal stops it; returns the exit code. */
export async function serve(configFile?: string): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(configFile ? { file: configFile } : {});
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 2;
  }
  const logger = createLogger(config.logLevel);

  let devMint: DevMintProcess | undefined;
  if (config.devMint) {
    try {
      makeDataDir(config.dataDir);
      devMint = await startDevMintProcess(join(config.dataDir, 'devmint.json'));
    } catch (err) {
      return cannotStart(logger, err);
    }
    if (devMint.reused) {
      logger.info(
        { mint: devMint.url },
        'using the dev mint already running there (its state file is its own)',
      );
    }
    logger.warn(
      { mint: devMint.url },
      'trusting the development mint: its Lightning backend is fake, never use it for real payments',
    );
    config = withMint(config, devMint.url);
  }
  if (config.mints.length === 0) {
    logger.error(
      'no mints configured: set PAYGRESS_MINTS or mints in the configuration file',
    );
    await devMint?.stop();
    return 2;
  }

  let app: App;
  try {
    app = await startApp({ config, logger });
  } catch (err) {
    await devMint?.stop();
    return cannotStart(logger, err);
  }
  let signals: StopSignals | undefined;
  const why = await new Promise<NodeJS.Signals | 'store failed'>((resolve) => {
    signals = onStopSignals(logger, app, resolve);
    // As a database does after a failed fsync: the writes the disk dropped
    // cannot be known, and only reopening the store from what is on disk
    // takes payments again. Stopping now lets a supervisor restart it at
    // once, instead of refusing payments until a probe gives up.
    void app.storeFailed.then(() => {
      signals?.begun();
      resolve('store failed');
    });
  });

  if (why === 'store failed') {
    logger.error(
      { graceMs: config.shutdownGraceMs, exitStatus: STORE_FAILED_EXIT },
      'shutting down: the wallet store takes payments again only once Paygress restarts',
    );
  } else {
    logger.info(
      { signal: why, graceMs: config.shutdownGraceMs },
      'shutting down',
    );
  }
  await app.close();
  await devMint?.stop();
  logger.info('stopped');
  signals?.done();
  logger.flush();
  if (app.store.failed) {
    // Now, not once the event loop drains: Node would then close the
    // store's connection, and SQLite, closing it, would copy into the
    // database the log the failed sync may have lost pages of. Left as it
    // is, the next start reads the log up to the first page it cannot
    // trust, and keeps every transaction before it.
    process.exit(STORE_FAILED_EXIT);
  }
  return 0;
}

/**
 * Exit status after a failed sync of the wallet store: EX_TEMPFAIL
 * (sysexits.h), a temporary failure a restart mends, told apart from a
 * start that failed (1) or a configuration refused (2).
 */
export const STORE_FAILED_EXIT = 75;

/**
 * SIGTERM or SIGINT received, the first included, at which Paygress stops
 * without waiting for its shutdown to finish (see {@link onStopSignals}).
 */
const FORCE_AFTER_SIGNALS = 3;

/** The shutdown as the signal handlers know it. */
interface StopSignals {
  /** A shutdown began without a signal: the next one is the second. */
  begun(): void;
  /** The shutdown is over: signals are ignored while the process exits. */
  done(): void;
}

/**
 * Calls `first` on the first SIGTERM or SIGINT, which starts the shutdown
 * (unless one began already, {@link StopSignals.begun}).
 * The handlers stay installed (not `once`), so the signals that follow do
 * not end the process with the default action (exit 130 or 143 at once,
 * requests cut, the store left open): one Ctrl-C under `npm run dev`
 * already delivers SIGINT twice, once from the terminal and once forwarded
 * by npm. The second signal is logged and ignored, and the shutdown under
 * way finishes: requests in flight get their grace period, the store is
 * closed.
 *
 * The {@link FORCE_AFTER_SIGNALS}th stops at once, for an operator who
 * chose not to wait out the grace periods (up to twice shutdownGraceMs).
 * That costs no money: every change the store made was committed when it
 * returned (an exit, unlike a power cut, loses none of what the
 * operating system holds), the store is still closed (synchronously,
 * between two of its transactions, as none spans an await), and what the
 * cut requests left undone is what a crash leaves: a swap written ahead is
 * settled with the mint at the next start, an answer not delivered is owed
 * to the same token. Their payers retry instead of getting an answer now.
 */
function onStopSignals(
  logger: Logger,
  app: App,
  first: (signal: NodeJS.Signals) => void,
): StopSignals {
  let received = 0;
  let done = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // Stopped already, only exiting: nothing is left to cut.
    if (done) return;
    received += 1;
    if (received === 1) {
      first(signal);
      return;
    }
    if (received < FORCE_AFTER_SIGNALS) {
      logger.warn(
        { signal },
        'already shutting down, signal ignored; one more stops at once, cutting requests in flight',
      );
      return;
    }
    logger.warn(
      { signal },
      'stopping at once: requests in flight are cut; their payments are settled at the next start or owed to the same token',
    );
    try {
      app.stopNow();
    } catch (err) {
      logger.error(
        { err },
        'the store did not close; it recovers at the next start',
      );
    }
    logger.flush();
    process.exit(
      app.store.failed
        ? STORE_FAILED_EXIT
        : 128 + (signal === 'SIGINT' ? 2 : 15),
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    begun: () => {
      received = Math.max(received, 1);
    },
    done: () => {
      done = true;
    },
  };
}

/**
 * A port in use, an unreadable wallet store, a dev mint that would not
 * start: one line that says so, and exit status 1.
 */
function cannotStart(logger: Logger, err: unknown): number {
  // A library's message may quote what it read (a kubeconfig's line, a
  // URL with its credentials): taken out as in every other logged error.
  const text = redactSecrets(err instanceof Error ? err.message : String(err));
  // A stack helps with a bug, not with a setting to change.
  const fields = err instanceof StartupError ? { code: err.code } : { err };
  logger.fatal(fields, `paygress could not start: ${text}`);
  logger.flush();
  // With logging off, the reason would go nowhere.
  if (logger.level === 'silent') {
    process.stderr.write(`paygress could not start: ${text}\n`);
  }
  return 1;
}

function withMint(config: Config, url: string): Config {
  if (config.mints.some((m) => m.url === url)) return config;
  return { ...config, mints: [...config.mints, { url, units: ['sat'] }] };
}
