/**
 * A real WebSocket client (the `ws` package) for the tests, with promises for what the
 * tests wait on: the handshake, the next message, a refusal, the close.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import WebSocket from 'ws';

export { WebSocket };

/** What the client was told when the server did not switch protocols. */
export interface Refusal {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface OpenSocket {
  readonly ws: WebSocket;
  /** The 101 response's headers. */
  readonly headers: IncomingHttpHeaders;
}

export interface Message {
  readonly data: Buffer;
  readonly binary: boolean;
}

/** ws's client options, and the subprotocols to offer (Sec-WebSocket-Protocol). */
export type ClientOptions = WebSocket.ClientOptions & { readonly protocols?: string[] };

/**
 * `url` is ws://host:port/path or ws+unix:///path/to.sock:/path. `clients` collects every
 * socket opened, for closing after the test.
 */
export function openWebSocket(url: string, clients?: Set<WebSocket>, options: ClientOptions = {}): Promise<OpenSocket> {
  const { protocols = [], ...rest } = options;
  const ws = new WebSocket(url, protocols, rest);
  clients?.add(ws);
  closings.set(
    ws,
    new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))),
  );
  return new Promise((resolve, reject) => {
    let headers: IncomingHttpHeaders = {};
    ws.once('upgrade', (res: IncomingMessage) => (headers = res.headers));
    ws.once('open', () => resolve({ ws, headers }));
    ws.once('unexpected-response', (_req, res: IncomingMessage) =>
      readBody(res).then((body) => reject(Object.assign(new Error(`refused: ${res.statusCode}`), { refusal: { status: res.statusCode, headers: res.headers, body } }))),
    );
    ws.once('error', reject);
  });
}

/** The answer to an upgrade request that is expected to be refused (anything but 101). */
export async function refusalOf(url: string, options: ClientOptions = {}): Promise<Refusal> {
  try {
    const { ws } = await openWebSocket(url, undefined, options);
    ws.terminate();
  } catch (err) {
    const refusal = (err as { refusal?: Refusal }).refusal;
    if (refusal !== undefined) return refusal;
    throw err;
  }
  throw new Error(`${url}: the upgrade was accepted`);
}

/** The next message on `ws`; rejects if the connection closes first or after timeoutMs. */
export function nextMessage(ws: WebSocket, timeoutMs = 10_000): Promise<Message> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (data: Buffer, binary: boolean): void => finish(undefined, { data, binary });
    const onClose = (code: number): void => finish(new Error(`closed (${code}) before a message came`));
    const finish = (error?: Error, message?: Message): void => {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      if (error !== undefined) reject(error);
      else resolve(message!);
    };
    ws.on('message', onMessage);
    ws.on('close', onClose);
  });
}

export interface Closing {
  readonly code: number;
  readonly reason: string;
}

/** Each socket's close, watched from its start so that a close before the test asks is not missed. */
const closings = new WeakMap<WebSocket, Promise<Closing>>();

/**
 * Resolves with the close code and reason once `ws` (from openWebSocket) is closed: 1006
 * when the connection ended without a close frame. Rejects after timeoutMs.
 */
export function closed(ws: WebSocket, timeoutMs = 10_000): Promise<Closing> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([closings.get(ws)!, timeout]).finally(() => clearTimeout(timer));
}

/** Ends every client socket still open (in afterEach). */
export function terminateAll(clients: Set<WebSocket>): void {
  for (const ws of clients) ws.terminate();
  clients.clear();
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    res.setEncoding('latin1');
    res.on('data', (chunk: string) => (body += chunk));
    res.on('end', () => resolve(body));
    res.on('error', () => resolve(body));
    res.on('close', () => resolve(body));
  });
}
