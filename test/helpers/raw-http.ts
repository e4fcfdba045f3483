import net from 'node:net';

/** One raw HTTP/1.1 connection (to the proxy or the app), for what an HTTP client library would hide. */
export interface RawConnection {
  readonly socket: net.Socket;
  /** Everything received so far, as latin1 text. */
  received(): string;
  /** Whether the proxy closed (or reset) the connection. */
  closed(): boolean;
  /** Resolves once `predicate(received)` holds or the connection closed; rejects after timeoutMs. */
  waitFor(predicate: (text: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves with everything received once the connection is closed; rejects after timeoutMs. */
  waitClosed(timeoutMs?: number): Promise<string>;
}

/** Connects to a TCP port on 127.0.0.1, or to a unix socket path. */
export async function rawConnect(target: number | string): Promise<RawConnection> {
  const socket = typeof target === 'number' ? net.connect(target, '127.0.0.1') : net.connect(target);
  let text = '';
  let closed = false;
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const waiter of waiters) waiter();
  };
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    text += chunk;
    wake();
  });
  // A reset is a close too: what matters here is what arrived before it.
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
    wake();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const waitFor = (predicate: (t: string) => boolean, timeoutMs = 5_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (predicate(text) || closed) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(text);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`raw connection: condition not met within ${timeoutMs} ms; received so far:\n${text}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return {
    socket,
    received: () => text,
    closed: () => closed,
    waitFor,
    waitClosed: async (timeoutMs = 5_000) => {
      await waitFor(() => false, timeoutMs);
      return text;
    },
  };
}

/**
 * True once `text` holds a complete response: its head and then as many body bytes as its
 * Content-Length says, or a chunked body up to its last-chunk (a simple check, enough for
 * the short bodies these tests expect).
 */
export function hasCompleteResponse(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const head = text.slice(0, end);
  // An interim 100 Continue is not the response.
  if (/^HTTP\/1\.1 1\d\d /.test(head)) return hasCompleteResponse(text.slice(end + 4));
  const body = text.slice(end + 4);
  if (/^transfer-encoding:\s*chunked\s*$/im.test(head)) return body.startsWith(LAST_CHUNK) || body.includes(`\r\n${LAST_CHUNK}`);
  const length = /^content-length:\s*(\d+)\s*$/im.exec(head);
  if (length === null) return false;
  return body.length >= Number(length[1]);
}

/** A chunk of chunked transfer coding carrying `data`. */
export function chunk(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  return Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n')]);
}

/** The last-chunk and empty trailer section that end a chunked body. */
export const LAST_CHUNK = '0\r\n\r\n';
