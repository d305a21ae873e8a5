/**
 * What adapters render: the HTTP answer before it is written, and the
 * rule by which a rendering is kept.
 */
import type { Decision } from '../core/model.ts';

/** An HTTP answer an adapter rendered, before it is written. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Body text; empty means `Content-Length: 0`. */
  readonly body: string;
}

/**
 * What an adapter renders from a decision, made once for each constant
 * (frozen) decision and kept in `cache`; a decision of one request alone
 * is rendered every time.
 */
export function renderOnce<T>(
  cache: WeakMap<Decision, T>,
  decision: Decision,
  render: (decision: Decision) => T,
): T {
  if (!Object.isFrozen(decision)) return render(decision);
  let rendered = cache.get(decision);
  if (rendered === undefined) {
    rendered = render(decision);
    cache.set(decision, rendered);
  }
  return rendered;
}
