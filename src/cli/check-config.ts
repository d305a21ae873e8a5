/**
 * `paygress check-config <file>`: loads the file as Paygress would at
 * startup (environment variables applied) and reports. Exit 0 with a
 * one-line summary when valid (and any warnings, `warning: ` and one a
 * line, on standard error); exit 2 with every problem, one a line, on
 * standard error otherwise. Secrets are never printed.
 */
import {
  ConfigError,
  configWarnings,
  loadConfig,
  type Config,
  type Listen,
} from '../config.ts';
import { hostPort } from '../host-port.ts';

/** Exit status for an invalid configuration or a usage error. */
export const EXIT_INVALID = 2;

/** Output of {@link checkConfig}. */
export interface CheckResult {
  /** Process exit status: 0 valid, 2 invalid. */
  readonly code: number;
  /** Lines for standard output. */
  readonly out: readonly string[];
  /** Lines for standard error. */
  readonly err: readonly string[];
}

/**
 * Checks the configuration named by `args` (the arguments after the
 * command name) under `env`.
 */
export function checkConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): CheckResult {
  if (args.length !== 1 || args[0] === undefined || args[0].startsWith('-')) {
    return {
      code: EXIT_INVALID,
      out: [],
      err: ['usage: paygress check-config <file>'],
    };
  }

  try {
    const config = loadConfig({ file: args[0], env });
    return {
      code: 0,
      out: [summary(args[0], config)],
      err: configWarnings(config).map((w) => `warning: ${w}`),
    };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { code: EXIT_INVALID, out: [], err: [...err.problems] };
  }
}

/** One line saying what the configuration will do. */
export function summary(file: string, config: Config): string {
  const rules = config.pricing.rules.length;
  const price = config.pricing.default;
  const mints = config.mints.length + (config.devMint ? ' + dev mint' : '');
  const pods = config.provisioning.enabled
    ? `pods in ${config.provisioning.namespace}`
    : 'provisioning off';

  return (
    `${file}: ok; http ${address(config.http)}, ` +
    `grpc ${address(config.grpc)}, ` +
    (config.admin ? `admin ${address(config.admin)}, ` : '') +
    `mints ${mints}, ` +
    `${rules} pricing rule${rules === 1 ? '' : 's'}, ` +
    `default ${price.amount} ${price.unit}, ${pods}`
  );
}

function address({ host, port }: Listen): string {
  return hostPort(host, port);
}

if (import.meta.main) {
  const result = checkConfig(process.argv.slice(2), process.env);
  for (const line of result.out) process.stdout.write(`${line}\n`);
  for (const line of result.err) process.stderr.write(`${line}\n`);
  process.exitCode = result.code;
}
