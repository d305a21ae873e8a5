/** An HTTP answer an adapter rendered, before it is written. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Body text; empty means `Content-Length: 0`. */
  readonly body: string;
}
