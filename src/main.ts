/**
 * `paygress serve`: loads the configuration, starts Paygress (and the dev
 * mint when configured), and shuts down cleanly on SIGTERM or SIGINT.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { startApp, type App } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import {
  startDevMintProcess,
  type DevMintProcess,
} from './dev-mint-process.ts';
import { createLogger } from './logger.ts';

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
      mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
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
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });

  logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
  await app.close();
  await devMint?.stop();
  logger.info('stopped');
  logger.flush();
  return 0;
}

/**
 * A port in use, an unreadable wallet store, a dev mint that would not
 * start: one line that says so, and exit status 1.
 */
function cannotStart(logger: Logger, err: unknown): number {
  const text = err instanceof Error ? err.message : String(err);
  logger.fatal({ err }, `paygress could not start: ${text}`);
  logger.flush();
  return 1;
}

function withMint(config: Config, url: string): Config {
  if (config.mints.some((m) => m.url === url)) return config;
  return { ...config, mints: [...config.mints, { url, units: ['sat'] }] };
}
