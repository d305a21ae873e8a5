/**
 * An error no logger can write: serialising it runs a getter that throws.
 * Stands in for a library's error object that misbehaves, to prove an
 * error line never takes a listener down.
 */
export function unwritableError(message: string): Error {
  const err = new Error(message);
  Object.defineProperty(err, 'detail', {
    enumerable: true,
    get() {
      throw new Error('unwritable');
    },
  });
  return err;
}
