/**
 * A request written as raw bytes, for what fetch will not send (a Host of
 * the test's choosing, a malformed one).
 */
import { connect } from 'node:net';

/** Writes a raw request (lines, no body) and reads the response head. */
export function rawExchange(port: number, lines: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      data += chunk;
      const end = data.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.destroy();
      resolve(data.slice(0, end + 4));
    });
    socket.on('error', reject);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}
