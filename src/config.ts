/**
 * Paygress configuration: one optional YAML file plus environment
 * variables (environment wins), checked once at startup into a frozen,
 * fully defaulted Config. docs/configuration.md describes every setting.
 *
 * Every problem is collected before failing, so an operator fixes a file
 * in one pass; unknown keys are problems too, since a misspelt setting
 * that silently keeps its default is worse than a refusal to start.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { normalizeMintUrl } from './core/mint-url.ts';
import { DEFAULT_REFUSALS_PER_SECOND } from './protocols/decision-log.ts';
import { DEFAULT_MAX_CONNECTIONS } from './protocols/connection-guard.ts';
import {
  riskyTemplateSettings,
  validatePodTemplate,
  type PodTemplate,
} from './k8s/pod-template.ts';
import type {
  Charge,
  MintOffer,
  PathMatch,
  PricingRule,
  RouteMatch,
} from './core/pricing.ts';

/** A listening address. */
export interface Listen {
  /** Interface to bind. Default `0.0.0.0`. */
  readonly host: string;
  /** TCP port, 0 for an ephemeral one. */
  readonly port: number;
}

/** pino log levels. */
export type LogLevel =
  'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** The whole Paygress configuration, frozen and fully defaulted. */
export interface Config {
  /**
   * What the environment held that looks like a setting and was not
   * taken as one (see {@link configWarnings}).
   */
  readonly warnings: readonly string[];
  /**
   * Forward-auth / auth_request listener. Default `0.0.0.0:8080`, at
   * most 1024 connections open at once.
   */
  readonly http: Listen & { readonly maxConnections: number };
  /**
   * Envoy ext_authz gRPC listener. Default `0.0.0.0:9001`, at most 1024
   * connections open at once.
   */
  readonly grpc: Listen & { readonly maxConnections: number };
  /**
   * A listener for `/healthz`, `/readyz` and `/metrics` alone, so the
   * others can stay on loopback while probes and scrapes reach the pod IP.
   * With it, `/metrics` is served here only. Its host defaults to the
   * HTTP listener's. Default none.
   */
  readonly admin?: Listen;
  /** Directory of the wallet store. Default `./.data`. */
  readonly dataDir: string;
  /** Log level. Default `info`. */
  readonly logLevel: LogLevel;
  /**
   * Decisions logged at `info`: `payments` (all but refusals without a
   * credential and allows that cost nothing) or `all`. Default `payments`.
   */
  readonly logDecisions: 'payments' | 'all';
  /**
   * Refusal lines logged per second at most, all reasons together; the
   * rest are counted in one summary line a second. 0 lifts the limit.
   * Decisions that move money are always logged. Default 50.
   */
  readonly logRefusalLimit: number;
  /**
   * Build of libsecp256k1 for the curve work of a redemption: `native`
   * (the prebuilt addon; refuse to start without it), `wasm`, or `auto`
   * (native where it loads). Default `auto`.
   */
  readonly secp256k1: 'auto' | 'native' | 'wasm';
  /** Mints we accept tokens from, URLs normalised. Default none. */
  readonly mints: readonly MintOffer[];
  readonly mint: {
    /** Time limit for one mint request, in ms. Default 5000. */
    readonly timeoutMs: number;
    /** Accept `http:` mint URLs on non-loopback hosts. Default false. */
    readonly allowHttp: boolean;
  };
  readonly tokens: {
    /** Longest token accepted, in characters. Default 16384. */
    readonly maxLength: number;
    /** Refuse proofs without a DLEQ proof (NUT-12). Default false. */
    readonly requireDleq: boolean;
  };
  readonly replay: {
    /** Redeemed proof `Y`s kept in memory, in entries. Default 1000000. */
    readonly cacheSize: number;
  };
  readonly pricing: {
    /** Per-request price when no rule matches. Default 1000 sat. */
    readonly default: { readonly amount: number; readonly unit: string };
    /** Honour `X-Required-Amount` from the ingress. Default false. */
    readonly trustedAmountHeader: boolean;
    /** Rules in order; the first match wins. Default none. */
    readonly rules: readonly PricingRule[];
  };
  readonly grants: {
    /**
     * HMAC key, at least 32 bytes; required with a rate rule, and with
     * an operator key and provisioning on (credits).
     */
    readonly key?: string;
    /** Earlier keys still accepted while grants signed by them live. */
    readonly previousKeys: readonly string[];
    /** Cookie carrying a grant. Default `paygress_grant`. */
    readonly cookieName: string;
  };
  readonly provisioning: {
    /** Create a pod per paid grant. Default false. */
    readonly enabled: boolean;
    /** Namespace of the pods. Default `default`. */
    readonly namespace: string;
    /** Deadline of each Kubernetes API call, in ms. Default 5000. */
    readonly timeoutMs: number;
    /** What every pod runs; required when enabled. */
    readonly template?: PodTemplate;
  };
  readonly wallet: {
    /**
     * Operator's public key (compressed secp256k1, 66 hex digits). When
     * set, every redeemed proof is P2PK-locked (NUT-11) to it, so neither
     * Paygress nor anyone who copies its disk can spend the money. Default
     * none (Paygress warns at start-up).
     */
    readonly operatorPubkey?: string;
  };
  /** Time in-flight requests get to finish on shutdown, in ms. Default 10000. */
  readonly shutdownGraceMs: number;
  /** Start the embedded development mint and trust it. Default false. */
  readonly devMint: boolean;
}

/** The configuration is invalid; `problems` lists every reason, one a line. */
export class ConfigError extends Error {
  /** Each problem names the key, the value and what was expected. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = Object.freeze([...problems]);
  }
}

/** Options of {@link loadConfig}. */
export interface LoadOptions {
  /** YAML file to read; default `PAYGRESS_CONFIG`, else none. */
  readonly file?: string;
  /** Environment variables; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * For a command that signs no grant (the wallet's): `grants.key` is not
   * required where serving needs it, so reading a balance does not take
   * the signing secret. A key given is still checked.
   */
  readonly keyless?: boolean;
}

type Kind = 'string' | 'int' | 'bool' | 'list' | 'mints';

/** Environment variables, the key each sets and how its value is read. */
export const ENV_VARS: readonly (readonly [string, string, Kind])[] = [
  ['PAYGRESS_HTTP_HOST', 'http.host', 'string'],
  ['PAYGRESS_HTTP_PORT', 'http.port', 'int'],
  ['PAYGRESS_HTTP_MAX_CONNECTIONS', 'http.maxConnections', 'int'],
  ['PAYGRESS_GRPC_HOST', 'grpc.host', 'string'],
  ['PAYGRESS_GRPC_PORT', 'grpc.port', 'int'],
  ['PAYGRESS_GRPC_MAX_CONNECTIONS', 'grpc.maxConnections', 'int'],
  ['PAYGRESS_ADMIN_HOST', 'admin.host', 'string'],
  ['PAYGRESS_ADMIN_PORT', 'admin.port', 'int'],
  ['PAYGRESS_DATA_DIR', 'dataDir', 'string'],
  ['PAYGRESS_LOG_LEVEL', 'logLevel', 'string'],
  ['PAYGRESS_LOG_DECISIONS', 'logDecisions', 'string'],
  ['PAYGRESS_LOG_REFUSAL_LIMIT', 'logRefusalLimit', 'int'],
  ['PAYGRESS_SECP256K1', 'secp256k1', 'string'],
  ['PAYGRESS_MINTS', 'mints', 'mints'],
  ['PAYGRESS_MINT_TIMEOUT_MS', 'mint.timeoutMs', 'int'],
  ['PAYGRESS_MINT_ALLOW_HTTP', 'mint.allowHttp', 'bool'],
  ['PAYGRESS_MAX_TOKEN_LENGTH', 'tokens.maxLength', 'int'],
  ['PAYGRESS_REQUIRE_DLEQ', 'tokens.requireDleq', 'bool'],
  ['PAYGRESS_REPLAY_CACHE_SIZE', 'replay.cacheSize', 'int'],
  ['DEFAULT_PAYMENT_AMOUNT', 'pricing.default.amount', 'int'],
  ['PAYGRESS_DEFAULT_UNIT', 'pricing.default.unit', 'string'],
  [
    'PAYGRESS_TRUST_REQUIRED_AMOUNT_HEADER',
    'pricing.trustedAmountHeader',
    'bool',
  ],
  ['PAYGRESS_GRANT_KEY', 'grants.key', 'string'],
  ['PAYGRESS_GRANT_PREVIOUS_KEYS', 'grants.previousKeys', 'list'],
  ['PAYGRESS_GRANT_COOKIE', 'grants.cookieName', 'string'],
  ['ENABLE_POD_PROVISIONING', 'provisioning.enabled', 'bool'],
  ['POD_NAMESPACE', 'provisioning.namespace', 'string'],
  ['PAYGRESS_PROVISIONING_TIMEOUT_MS', 'provisioning.timeoutMs', 'int'],
  ['PAYGRESS_POD_IMAGE', 'provisioning.template.image', 'string'],
  ['PAYGRESS_OPERATOR_PUBKEY', 'wallet.operatorPubkey', 'string'],
  ['PAYGRESS_SHUTDOWN_GRACE_MS', 'shutdownGraceMs', 'int'],
  ['PAYGRESS_DEV_MINT', 'devMint', 'bool'],
];

/**
 * Reads, merges and checks the configuration.
 * @throws ConfigError listing every problem found.
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const file = options.file ?? (env.PAYGRESS_CONFIG || undefined);

  const raw = file === undefined ? {} : readYaml(file);
  const warnings = environmentWarnings(env, raw);
  const sources = new Map<string, string>();
  for (const [name, key, kind] of ENV_VARS) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(raw, key, fromEnv(value, kind));
    sources.set(key, name);
  }

  const check = new Checker(sources);
  const config = readConfig(check, raw, options.keyless ?? false);
  if (check.problems.length > 0) throw new ConfigError(check.problems);
  return deepFreeze({ ...config, warnings });
}

/**
 * What Kubernetes names the variables of a Service called `paygress` in
 * the pod's namespace (service links): not settings, and not warned of.
 */
const SERVICE_LINK =
  /^PAYGRESS_(SERVICE_(HOST|PORT)(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$/;

/**
 * Variables of the environment that look like settings and are not: a
 * `PAYGRESS_` name Paygress does not read (a misspelt one would otherwise
 * keep its default in silence), and `POD_NAMESPACE`, which a pod's spec
 * often sets to its own namespace, overriding the file's
 * `provisioning.namespace`.
 */
function environmentWarnings(
  env: Readonly<Record<string, string | undefined>>,
  file: Record<string, unknown>,
): string[] {
  const known = [...ENV_VARS.map(([name]) => name), 'PAYGRESS_CONFIG'];
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('PAYGRESS_') || known.includes(name)) continue;
    if (SERVICE_LINK.test(name)) continue;
    const near = known
      .map((k) => ({ k, d: editDistance(name, k) }))
      .filter(({ d }) => d <= 3)
      .sort((a, b) => a.d - b.d)[0];
    warnings.push(
      `${name} is not a Paygress setting and is ignored${near ? ` (did you mean ${near.k}?)` : ''}`,
    );
  }
  const provisioning = file.provisioning;
  const fromFile = isMapping(provisioning) ? provisioning.namespace : undefined;
  const fromEnv = env.POD_NAMESPACE?.trim();
  if (fromEnv && typeof fromFile === 'string' && fromFile !== fromEnv) {
    warnings.push(
      `POD_NAMESPACE (${fromEnv}) overrides provisioning.namespace (${fromFile}) from the file: payers' pods go to ${fromEnv}; unset it if it names Paygress's own namespace`,
    );
  }
  return warnings;
}

/** Levenshtein distance: how many one-letter edits turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        row[j]! + 1,
        next[j - 1]! + 1,
        row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length]!;
}

/**
 * Settings that are valid but probably not what the operator wants, one
 * sentence each: `serve` logs them at start-up, `check-config` prints them.
 */
export function configWarnings(config: Config): string[] {
  const warnings = [...config.warnings];
  const { enabled, template } = config.provisioning;
  if (!enabled || template === undefined) return warnings;
  warnings.push(
    ...riskyTemplateSettings(template).map(
      (risk) => `provisioning.template.${risk} (in every payer's pod)`,
    ),
  );
  const cap = template.maxLifetimeSeconds;
  for (const rule of config.pricing.rules) {
    const { charge } = rule;
    if (
      cap !== undefined &&
      charge.kind === 'rate' &&
      charge.maxSeconds > cap
    ) {
      warnings.push(
        `provisioning.template.maxLifetimeSeconds (${cap} s) is shorter than rule ${rule.name}'s rate.maxSeconds (${charge.maxSeconds} s): a payer can buy time their pod will not live`,
      );
    }
  }
  return warnings;
}

/**
 * A configured mint URL, checked for what a configuration may name (https
 * unless loopback, no credentials, query or fragment), in the one form
 * Paygress compares and stores ({@link normalizeMintUrl}): lower-case
 * scheme and host, default port dropped, no trailing slash.
 * @throws TypeError saying what is wrong with the URL.
 */
export function normaliseMintUrl(raw: string, allowHttp = false): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError('a valid absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError('an http(s) URL');
  }
  if (url.username !== '' || url.password !== '') {
    throw new TypeError('a URL without credentials');
  }
  if (raw.includes('?') || raw.includes('#')) {
    throw new TypeError('a URL without query or fragment');
  }
  // Over plain http anyone on the path can answer as the mint and have us
  // accept forged proofs; loopback cannot be intercepted that way.
  if (url.protocol === 'http:' && !allowHttp && !isLoopback(url.hostname)) {
    throw new TypeError(
      'an https URL (http is allowed for loopback only, or anywhere with mint.allowHttp)',
    );
  }
  return normalizeMintUrl(raw);
}

function isLoopback(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname === '[::1]' ||
    /^127\.\d+\.\d+\.\d+$/.test(hostname)
  );
}

/** Largest configuration file read: a real one is a few KiB. */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** YAML syntax errors listed, at most. */
const MAX_YAML_ERRORS = 10;

/** The first `limit` bytes of `file` (fewer if it ends first). */
function readAtMost(file: string, limit: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(limit);
    let length = 0;
    while (length < limit) {
      const n = readSync(fd, buffer, length, limit - length, null);
      if (n === 0) break;
      length += n;
    }
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

function readYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    // A file, or what a shell hands over as one (a pipe, `/dev/stdin`,
    // `<(...)`, `/dev/null`): read to the limit and no further, so a
    // device that never ends (`/dev/zero`) is refused. A directory or a
    // socket is no configuration.
    const stat = statSync(file);
    if (stat.isDirectory() || stat.isSocket()) {
      throw new ConfigError([
        `config file ${file}: is not a file (a ${stat.isDirectory() ? 'directory' : 'socket'})`,
      ]);
    }
    // The size is not asked: a file of procfs says it is empty and is
    // not (/proc/self/pagemap runs to gigabytes).
    const bytes = readAtMost(file, MAX_CONFIG_BYTES + 1);
    if (bytes.length > MAX_CONFIG_BYTES) {
      throw new ConfigError([
        `config file ${file}: is larger than the ${MAX_CONFIG_BYTES} bytes a configuration may be`,
      ]);
    }
    text = bytes.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError([`config file ${file}: cannot be read (${code})`]);
  }

  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter: lines });
  if (doc.errors.length > 0) {
    // The first few: one broken nesting can repeat itself hundreds of times.
    const shown = doc.errors.slice(0, MAX_YAML_ERRORS).map((e) => {
      const { line, col } = lines.linePos(e.pos[0]);
      return `config file ${file}, line ${line} column ${col}: ${oneLine(e.message)}`;
    });
    const more = doc.errors.length - shown.length;
    if (more > 0) shown.push(`config file ${file}: ${more} more YAML errors`);
    throw new ConfigError(shown);
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (err) {
    // An alias that names no anchor: most often a value that starts with
    // `*` unquoted (a host pattern), which YAML reads as one.
    // The parser's message names the alias, which may be a secret written
    // unquoted (`key: *…`): it is not repeated.
    const message = oneLine(String((err as Error)?.message ?? err));
    const why = /unresolved alias/i.test(message)
      ? "a value starting with * is read as a YAML alias that names no anchor; quote a value that starts with * (e.g. '*.example.com')"
      : message;
    throw new ConfigError([`config file ${file}: ${why}`]);
  }
  if (value === null || value === undefined) return {};
  if (!isMapping(value)) {
    throw new ConfigError([`config file ${file}: is not a YAML mapping`]);
  }
  // The shipped ConfigMap holds the configuration; it is not one.
  if (value.kind === 'ConfigMap' && 'apiVersion' in value) {
    throw new ConfigError([
      `config file ${file}: is a Kubernetes ConfigMap, not a Paygress configuration: check the paygress.yaml in its data (deploy/kubernetes/README.md shows how to write it out)`,
    ]);
  }
  return value;
}

function fromEnv(value: string, kind: Kind): unknown {
  const text = value.trim();
  if (kind === 'int') return /^-?\d+$/.test(text) ? Number(text) : value;
  if (kind === 'bool') {
    if (/^(true|yes|on|1)$/i.test(text)) return true;
    if (/^(false|no|off|0)$/i.test(text)) return false;
    return value;
  }
  if (kind === 'list') return splitList(text, ',');
  if (kind === 'mints') {
    return splitList(text, ';').map((entry) => {
      // A mint URL takes no credentials, query or fragment: an entry with
      // any is one URL, refused whole (and shown without them), not split
      // at a `=` of its query into a URL and "units".
      if (/[?#@]/.test(entry)) return { url: entry };
      const [url = '', units] = entry.split('=', 2);
      if (units === undefined) return { url: url.trim() };
      // `url=` names no unit: refused as an empty one, not defaulted.
      const list = units.trim() === '' ? [''] : splitList(units, ',');
      return { url: url.trim(), units: list };
    });
  }
  return text;
}

function splitList(text: string, separator: string): string[] {
  return text
    .split(separator)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function setPath(target: Record<string, unknown>, key: string, value: unknown) {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (!isMapping(node[part])) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

/** Collects problems; each names the key (and its variable), value, need. */
class Checker {
  readonly problems: string[] = [];
  #sources: ReadonlyMap<string, string>;

  constructor(sources: ReadonlyMap<string, string>) {
    this.#sources = sources;
  }

  /** Records that `value` at `key` is not `expected`. */
  bad(key: string, value: unknown, expected: string): void {
    const label = this.label(key);
    this.problems.push(
      value === undefined
        ? `${label}: missing, expected ${expected}`
        : `${label}: ${show(key, value)} is not ${expected}`,
    );
  }

  /** The key, with the environment variable it came from, if any. */
  label(key: string): string {
    for (const [source, name] of this.#sources) {
      if (key === source || key.startsWith(`${source}[`)) {
        return `${key} (${name})`;
      }
    }
    return key;
  }
}

/** Reads the value at `key`, reporting problems and returning a fallback. */
type Reader<T> = (c: Checker, key: string, value: unknown) => T;

const raw: Reader<unknown> = (_c, _key, value) => value;

function int<F extends number | undefined = number>(
  fallback: F,
  min: number,
  what: string,
  max = Number.MAX_SAFE_INTEGER,
): Reader<number | F> {
  return (c, key, value) => {
    if (value === undefined) return fallback;
    const n = Number.isSafeInteger(value) ? (value as number) : NaN;
    if (n >= min && n <= max) return n;
    c.bad(key, value, what);
    return fallback;
  };
}

function bool(fallback: boolean): Reader<boolean> {
  return (c, key, value) => {
    if (value === undefined || typeof value === 'boolean') {
      return value ?? fallback;
    }
    c.bad(
      key,
      value,
      'true or false (in the environment also yes/no, on/off, 1/0)',
    );
    return fallback;
  };
}

function text<F>(fallback: F, pattern: RegExp, what: string) {
  const read: Reader<string | F> = (c, key, value) => {
    if (value === undefined) return fallback;
    if (typeof value === 'string' && pattern.test(value)) return value;
    c.bad(key, value, what);
    return fallback;
  };
  return read;
}

function oneOf<T extends string>(values: readonly T[], fallback: T) {
  const pattern = new RegExp(`^(${values.join('|')})$`);
  return text(fallback, pattern, `one of ${values.join(', ')}`) as Reader<T>;
}

function required<T>(read: Reader<T>, what: string): Reader<T> {
  return (c, key, value) => {
    if (value === undefined) c.bad(key, undefined, what);
    return read(c, key, value);
  };
}

/** A list; items that fail their reader are reported and left out. */
function list<T>(item: Reader<T | undefined>): Reader<T[]> {
  return (c, key, value) => {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      c.bad(key, value, 'a list');
      return [];
    }
    const items = value.map((v, i) => item(c, `${key}[${i}]`, v));
    return items.filter((v) => v !== undefined);
  };
}

/** A mapping read field by field; keys not in `shape` are problems. */
function section<S extends Record<string, Reader<unknown>>>(shape: S) {
  const keys = Object.keys(shape);
  const read: Reader<{ [K in keyof S]: ReturnType<S[K]> }> = (c, key, v) => {
    const at = (name: string) => (key === '' ? name : `${key}.${name}`);
    if (v !== undefined && !isMapping(v)) {
      c.bad(key, v, `a mapping (with keys ${keys.join(', ')})`);
    }
    const value = isMapping(v) ? v : {};
    for (const name of Object.keys(value).filter((k) => !keys.includes(k))) {
      c.problems.push(
        `${at(name)}: unknown key, expected one of ${keys.join(', ')}`,
      );
    }
    const entries = keys.map((k) => [k, shape[k]!(c, at(k), value[k])]);
    return Object.fromEntries(entries);
  };
  return read;
}

/** Node's longest timer: a longer one fires at once, with a warning. */
const MAX_TIMER_MS = 2_147_483_647;
const MS = `a positive integer of milliseconds, at most ${MAX_TIMER_MS} (24.8 days)`;
/** Beyond this the replay cache's arrays alone take some 2.5 GB. */
const MAX_REPLAY_ENTRIES = 100_000_000;
const PORT = 'an integer from 0 to 65535 (TCP port)';
const UNIT = /^[a-z][a-z0-9_]{0,31}$/;
const UNIT_WHAT = 'a Cashu unit in lower case, e.g. sat';
const LOG_LEVELS = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const;

// IPv6 addresses are written bare (`::1`): Node binds no bracketed host.
// One colon is a host with a port (`127.0.0.1:8080`), which would fail to
// bind only at start-up; an IPv6 address has two at least.
const HOST_NAME = /^(?:[^\s/[\]:]+|[^\s/[\]]*:[^\s/[\]]*:[^\s/[\]]*)$/;
const HOST_WHAT =
  'a host name or IP address without a port (IPv6 without brackets, e.g. ::1)';
const listen = (port: number) =>
  section({
    host: text('0.0.0.0', HOST_NAME, HOST_WHAT),
    port: int(port, 0, PORT, 65535),
    maxConnections: int(
      DEFAULT_MAX_CONNECTIONS,
      1,
      'a positive integer (connections open at once)',
    ),
  });

const readBase = section({
  http: listen(8080),
  grpc: listen(9001),
  admin: section({
    host: text(undefined, HOST_NAME, HOST_WHAT),
    port: int(undefined, 0, PORT, 65535),
  }),
  dataDir: text('./.data', /\S/, 'a directory path'),
  logLevel: oneOf(LOG_LEVELS, 'info'),
  logDecisions: oneOf(['payments', 'all'] as const, 'payments'),
  logRefusalLimit: int(
    DEFAULT_REFUSALS_PER_SECOND,
    0,
    'a non-negative integer (lines a second; 0 for no limit)',
  ),
  secp256k1: oneOf(['auto', 'native', 'wasm'] as const, 'auto'),
  mints: raw,
  mint: section({
    timeoutMs: int(5000, 1, MS, MAX_TIMER_MS),
    allowHttp: bool(false),
  }),
  tokens: section({
    maxLength: int(16384, 1, 'a positive integer (characters)'),
    requireDleq: bool(false),
  }),
  replay: section({
    cacheSize: int(
      1e6,
      1,
      `a positive integer of entries, at most ${MAX_REPLAY_ENTRIES} (about 23 bytes of memory each)`,
      MAX_REPLAY_ENTRIES,
    ),
  }),
  pricing: raw,
  grants: raw,
  provisioning: raw,
  wallet: section({
    operatorPubkey: text(
      undefined,
      /^0[23][0-9a-f]{64}$/,
      'a compressed secp256k1 public key: 66 lower-case hex digits starting 02 or 03',
    ),
  }),
  shutdownGraceMs: int(
    10_000,
    0,
    `a non-negative integer of milliseconds, at most ${MAX_TIMER_MS} (24.8 days)`,
    MAX_TIMER_MS,
  ),
  devMint: bool(false),
});

function readConfig(
  c: Checker,
  value: unknown,
  keyless: boolean,
): Omit<Config, 'warnings'> {
  const { admin: adminSection, ...base } = readBase(c, '', value);
  // The admin listener is there only when given a port, and binds where
  // the HTTP listener does unless told otherwise.
  const admin =
    adminSection.port === undefined
      ? undefined
      : { host: adminSection.host ?? base.http.host, port: adminSection.port };
  if (admin === undefined && adminSection.host !== undefined) {
    c.bad(
      'admin.port',
      undefined,
      `a port as well as ${c.label('admin.host')} (without one no admin listener starts)`,
    );
  }
  checkPorts(c, { http: base.http, grpc: base.grpc, admin });
  const mints = readMints(c, base.mints, base.mint.allowHttp, base.devMint);
  const pricing = readPricing(c, base.pricing, mints, base.devMint);
  const provisioning = readProvisioning(c, base.provisioning);
  const grants = readGrants(c, base.grants, {
    rates: !keyless && pricing.rules.some((r) => r.charge.kind === 'rate'),
    credits:
      !keyless &&
      provisioning.enabled &&
      base.wallet.operatorPubkey !== undefined,
  });
  return {
    ...base,
    ...(admin !== undefined && { admin }),
    mints,
    pricing,
    grants,
    provisioning,
  };
}

/**
 * Listeners sharing a port: one of them would fail to bind at start-up
 * (`0.0.0.0` takes the port on every address).
 */
function checkPorts(
  c: Checker,
  listeners: Readonly<Record<string, Listen | undefined>>,
): void {
  const seen = new Map<number, string>();
  for (const [name, listen] of Object.entries(listeners)) {
    if (listen === undefined || listen.port === 0) continue;
    const first = seen.get(listen.port);
    if (first === undefined) seen.set(listen.port, name);
    else {
      const other = c.label(`${first}.port`);
      c.bad(`${name}.port`, listen.port, `a free port (${other} has it)`);
    }
  }
}

function readMints(
  c: Checker,
  value: unknown,
  allowHttp: boolean,
  devMint: boolean,
): MintOffer[] {
  if (!devMint && (!Array.isArray(value) || value.length === 0)) {
    c.bad('mints', value, 'a list of at least one mint URL (or devMint: true)');
  }
  const entry = section({
    url: required(mintUrl(allowHttp), 'a mint URL'),
    units: list(text(undefined, UNIT, UNIT_WHAT)),
  });

  const mints: MintOffer[] = [];
  const read = list((c, key, v) =>
    entry(c, key, typeof v === 'string' ? { url: v } : v),
  );
  for (const [i, mint] of read(c, 'mints', value).entries()) {
    if (mint.url === undefined) continue;
    if (mints.some((m) => m.url === mint.url)) {
      c.bad(`mints[${i}].url`, mint.url, 'a mint listed once');
      continue;
    }
    mints.push({
      url: mint.url,
      units: mint.units.length > 0 ? mint.units : ['sat'],
    });
  }
  return mints;
}

function mintUrl(allowHttp: boolean): Reader<string | undefined> {
  return (c, key, value) => {
    if (value === undefined) return undefined;
    try {
      if (typeof value !== 'string') throw new TypeError('a mint URL');
      // Two URLs in one, which WHATWG parsing can take for one (a comma
      // is allowed in a host): lists in the environment are
      // comma-separated, but mints are not, as each may carry units.
      if (/,\s*https?:/i.test(value)) {
        throw new TypeError(
          'one mint URL (separate mints with ";": a;b or a=sat;b=usd)',
        );
      }
      return normaliseMintUrl(value, allowHttp);
    } catch (err) {
      c.bad(key, value, (err as Error).message);
      return undefined;
    }
  };
}

function readPricing(
  c: Checker,
  value: unknown,
  mints: readonly MintOffer[],
  devMint: boolean,
): Config['pricing'] {
  const amount = 'a positive integer (amount in the default unit)';
  const s = section({
    default: section({
      amount: int(1000, 1, amount),
      unit: text('sat', UNIT, UNIT_WHAT),
    }),
    trustedAmountHeader: bool(false),
    rules: raw,
  })(c, 'pricing', value);
  const rules = list(rule(s.default.unit, new Set()))(
    c,
    'pricing.rules',
    s.rules,
  );

  // The embedded dev mint's units are only known once it runs.
  const charged = rules.map((r) =>
    r.charge.kind === 'free' ? '' : r.charge.unit,
  );
  for (const u of new Set([s.default.unit, ...charged])) {
    if (u === '' || devMint || mints.length === 0) continue;
    if (mints.some((m) => m.units.includes(u))) continue;
    c.problems.push(
      `pricing: unit ${u} is charged but no configured mint offers it, expected a mint with units: [${u}]`,
    );
  }
  return { ...s, rules };
}

const RULE_NAME = /^(?!default$)[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const HOST =
  /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;
const AMOUNT = "a positive integer (amount in the rule's unit)";
/**
 * Ten years: the longest a rate rule's grant may run. A grant's expiry in
 * ms must stay a safe integer, and a pod's a date Kubernetes can write.
 */
const MAX_GRANT_SECONDS = 315_360_000;
const SECONDS = `a positive integer of seconds, at most ${MAX_GRANT_SECONDS} (ten years)`;

function rule(
  defaultUnit: string,
  seen: Set<string>,
): Reader<PricingRule | undefined> {
  const name =
    'a rule name of letters, digits, dot, dash or underscore, not "default"';
  const read = section({
    name: required(text('', RULE_NAME, name), name),
    match: readMatch,
    price: raw,
    rate: raw,
    free: raw,
  });

  return (c, key, value) => {
    if (!isMapping(value)) {
      c.bad(key, value, 'a mapping (a pricing rule)');
      return undefined;
    }
    const r = read(c, key, value);
    if (r.name !== '' && seen.has(r.name))
      c.bad(`${key}.name`, r.name, 'a unique name');
    seen.add(r.name);
    return {
      name: r.name,
      match: r.match,
      charge: readCharge(c, key, r, defaultUnit),
    };
  };
}

const PATH = /^\/[^\s?#]*$/;

function readMatch(c: Checker, key: string, value: unknown): RouteMatch {
  const m = section({
    host: text(undefined, HOST, 'a host name, optionally starting with *.'),
    path: text(undefined, PATH, 'a path starting with /'),
    pathMatch: oneOf(['exact', 'prefix', 'glob'] as PathMatch[], 'prefix'),
    methods: raw,
  })(c, key, value);

  const wildcards = (m.path ?? '').split('/').filter((s) => s.includes('*'));
  if (m.pathMatch !== 'glob' && wildcards.length > 0) {
    c.bad(
      `${key}.path`,
      m.path,
      'a path without * (use pathMatch: glob for wildcards)',
    );
  } else if (wildcards.some((s) => s !== '*' && s !== '**')) {
    c.bad(`${key}.path`, m.path, 'a glob whose segments are literal, * or **');
  }
  const methods = list(
    text(undefined, /^[A-Za-z]+$/, 'an HTTP method, e.g. GET'),
  );
  if (Array.isArray(m.methods) && m.methods.length === 0) {
    c.bad(
      `${key}.methods`,
      m.methods,
      'a non-empty list (omit it to match every method)',
    );
  }
  return {
    pathMatch: m.pathMatch,
    ...(m.host !== undefined && { host: m.host.toLowerCase() }),
    ...(m.path !== undefined && { path: m.path }),
    ...(m.methods !== undefined && {
      methods: methods(c, `${key}.methods`, m.methods).map((s) =>
        s.toUpperCase(),
      ),
    }),
  };
}

function readCharge(
  c: Checker,
  key: string,
  r: { price: unknown; rate: unknown; free: unknown },
  defaultUnit: string,
): Charge {
  const given = (['price', 'rate', 'free'] as const).filter(
    (k) => r[k] !== undefined,
  );
  if (given.length !== 1) {
    const has = given.length === 0 ? 'none' : `both ${given.join(' and ')}`;
    c.problems.push(
      `${key}: has ${has}, expected exactly one of price, rate and free`,
    );
    return { kind: 'free' };
  }

  const unit = text(defaultUnit, UNIT, UNIT_WHAT);
  if (r.price !== undefined) {
    const price = section({
      amount: required(int(1, 1, AMOUNT), AMOUNT),
      unit,
    });
    return { kind: 'request', ...price(c, `${key}.price`, r.price) };
  }
  if (r.rate !== undefined) {
    const p = section({
      amount: required(int(1, 1, `${AMOUNT} per perSeconds`), AMOUNT),
      unit,
      perSeconds: int(
        60,
        1,
        `a positive integer of seconds that amount buys, at most ${MAX_GRANT_SECONDS} (ten years)`,
        MAX_GRANT_SECONDS,
      ),
      minSeconds: int(0, 1, SECONDS, MAX_GRANT_SECONDS),
      maxSeconds: int(86_400, 1, SECONDS, MAX_GRANT_SECONDS),
    })(c, `${key}.rate`, r.rate);
    const minSeconds = p.minSeconds || p.perSeconds;
    if (p.maxSeconds < minSeconds) {
      c.bad(
        `${key}.rate.maxSeconds`,
        p.maxSeconds,
        `at least minSeconds (${minSeconds})`,
      );
    }
    return { kind: 'rate', ...p, minSeconds };
  }
  if (r.free !== true) {
    c.bad(`${key}.free`, r.free, 'true (use price or rate for a paid route)');
  }
  return { kind: 'free' };
}

const KEY_WHAT = 'a secret of at least 32 bytes';
const secret: Reader<string | undefined> = (c, key, value) => {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && /replace-me/i.test(value)) {
    // A key copied from an example is public: anyone could forge grants.
    c.bad(
      key,
      value,
      "a secret of your own, not an example's placeholder (generate one with: openssl rand -base64 48)",
    );
    return undefined;
  }
  if (typeof value === 'string' && Buffer.byteLength(value) >= 32) return value;
  c.bad(key, value, KEY_WHAT);
  return undefined;
};

/**
 * The grants section. A key is required where a credential must outlive
 * the process: grants bought by time (`rates`), and credits, which hold a
 * payment whose pod could not be made for up to seven days (`credits`:
 * provisioning on and proofs locked to the operator, so not refunded).
 */
function readGrants(
  c: Checker,
  value: unknown,
  issues: { rates: boolean; credits: boolean },
): Config['grants'] {
  const s = section({
    key: secret,
    previousKeys: list(secret),
    cookieName: text(
      'paygress_grant',
      /^(?!__host-|__secure-)[!#$%&'*+\-.^_`|~0-9a-z]+$/i,
      'a cookie name (an HTTP token) without a __Host- or __Secure- prefix (Paygress adds __Host- itself over https)',
    ),
  })(c, 'grants', value);

  const given = isMapping(value) && value.key !== undefined;
  const why = issues.rates
    ? 'rate rules issue grants'
    : issues.credits
      ? `with ${c.label('wallet.operatorPubkey')} and provisioning on, a payment whose pod cannot be made is kept as a credit, which a key of one process would void at its restart`
      : undefined;
  if (why !== undefined && !given) {
    c.bad(
      'grants.key',
      undefined,
      `${KEY_WHAT} (${why}): set PAYGRESS_GRANT_KEY, or grants.key in the file`,
    );
  }
  const { key, ...rest } = s;
  return key === undefined ? rest : { key, ...rest };
}

export const TEMPLATE_KEYS = [
  'image',
  'command',
  'args',
  'env',
  'resources',
  'ports',
  'labels',
  'annotations',
  'securityContext',
  'serviceAccountName',
  'maxLifetimeSeconds',
];

function readProvisioning(c: Checker, value: unknown): Config['provisioning'] {
  const namespace = 'a Kubernetes namespace name (DNS-1123 label)';
  const s = section({
    enabled: bool(false),
    namespace: text(
      'default',
      /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
      namespace,
    ),
    timeoutMs: int(5000, 1, MS, MAX_TIMER_MS),
    template: raw,
  })(c, 'provisioning', value);
  const { template, ...rest } = s;

  if (template === undefined) {
    if (rest.enabled)
      c.bad(
        'provisioning.template',
        undefined,
        'a pod template with at least an image (provisioning is enabled)',
      );
    return rest;
  }
  const shape = Object.fromEntries(TEMPLATE_KEYS.map((k) => [k, raw]));
  section(shape)(c, 'provisioning.template', template);
  if (!isMapping(template)) return rest;
  try {
    return {
      ...rest,
      template: validatePodTemplate(template as unknown as PodTemplate),
    };
  } catch (err) {
    const message = (err as Error).message.replace(
      /`template\./g,
      '`provisioning.template.',
    );
    c.problems.push(`provisioning.template: ${message}`);
    return rest;
  }
}

/**
 * A value as an error message shows it. Messages end up in CI output and
 * `kubectl logs`, so nothing that is or may be a secret is shown: grant
 * keys (and anything written where they belong), whatever is under
 * `wallet` (a private key pasted for the public one is the likely
 * mistake), and the credentials or query of a URL.
 */
function show(key: string, value: unknown): string {
  if (/^(grants(?!\.cookieName)|wallet)(\.|\[|$)/.test(key)) {
    return typeof value === 'string'
      ? key.startsWith('wallet')
        ? `a value of ${value.length} characters (not shown)`
        : `a ${Buffer.byteLength(value)}-byte secret`
      : kindOf(value);
  }
  if (typeof value === 'string') {
    const shown = withoutUrlSecrets(value, /^mints(\[|\.|$)|url/i.test(key));
    return JSON.stringify(
      shown.length > 80 ? `${shown.slice(0, 77)}...` : shown,
    );
  }
  if (Array.isArray(value)) return value.length ? 'a list' : 'an empty list';
  if (value instanceof Map) return 'an ordered mapping (!!omap or !!pairs)';
  if (value instanceof Set) return 'a set (!!set)';
  if (isMapping(value)) return 'a mapping';
  return String(value);
}

/** What a value is, named without showing it. */
function kindOf(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value}`;
}

/**
 * What could be a URL's user, password, query or fragment hidden, whether
 * or not the text parses as a URL (a typo, or a password with a `/`, may
 * keep it from parsing): all before the last `@` after any scheme, and
 * all from the first `?` or `#`. Text that is not `urlish` (a setting
 * that is no URL) and holds no `://` is left as it is.
 */
function withoutUrlSecrets(text: string, urlish: boolean): string {
  if (!urlish && !text.includes('://')) return text;
  return text
    .replace(
      /^(\s*[a-z][a-z0-9+.-]*:\/\/)?.*@/is,
      (_all, scheme: string | undefined) => `${scheme ?? ''}***@`,
    )
    .replace(/[?#].*$/s, '?***');
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * A plain mapping: not a list, nor the Map or Set YAML's `!!omap`,
 * `!!pairs` and `!!set` give, whose entries are no keys of the object and
 * would be read as an empty section.
 */
function isMapping(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
