/**
 * NUT-06 mint information of the dev mint: what it supports, and a
 * description that no one can mistake for a production mint.
 */

/** Version string announced in `GET /v1/info`. */
export const DEV_MINT_VERSION = 'paygress-devmint/0.1.0';

/** Body of `GET /v1/info` for the given units. */
export function mintInfo(units: readonly string[]) {
  const methods = units.map((unit) => ({
    method: 'bolt11',
    unit,
    min_amount: 1,
    max_amount: 2 ** 31 - 1,
    options: { description: false },
  }));

  return {
    name: 'Paygress dev mint',
    version: DEV_MINT_VERSION,
    description:
      'For development and tests only: fake Lightning backend, every invoice counts as paid. Not a real mint.',
    description_long:
      'A Cashu mint for running Paygress locally. Its ecash is worthless; it lasts as long as the process, or its state file.',
    contact: [],
    nuts: {
      4: { methods, disabled: false },
      5: { methods: [], disabled: true },
      7: { supported: true },
      8: { supported: false },
      9: { supported: true },
      10: { supported: true },
      11: { supported: true },
      12: { supported: true },
      14: { supported: false },
      20: { supported: false },
    },
    time: Math.floor(Date.now() / 1000),
  };
}
