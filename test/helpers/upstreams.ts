import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: string[];
  body: Buffer;
}

export interface TestUpstream {
  readonly path: string;
  /** The server line for the config: "unix:/tmp/…/a.sock". */
  readonly address: string;
  /** Every request this upstream received (complete with body once it has been read). */
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

export type Respond = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest) => void;

/**
 * A real HTTP server on a Unix socket, recording what it saw. By default it answers 200
 * with "ok <name>" once the request body has been read.
 */
export async function httpUpstream(path: string, respond: Respond = okFrom('upstream')): Promise<TestUpstream> {
  const requests: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const seen: SeenRequest = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) };
    requests.push(seen);
    respond(req, res, seen);
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    address: `unix:${path}`,
    requests,
    close: () => closeServer(server),
  };
}

/** Reads the whole request body into `seen.body`, then calls `then`. */
export function readBody(req: IncomingMessage, seen: SeenRequest, then: () => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    seen.body = Buffer.concat(chunks);
    then();
  });
}

/** Reads the whole body into `seen.body`, then answers 200 "ok NAME". */
export function okFrom(name: string, status = 200): Respond {
  return (req, res, seen) =>
    readBody(req, seen, () => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(`ok ${name}\n`);
    });
}

/** Accepts connections, reads the request, and closes without answering. */
export async function closingUpstream(path: string): Promise<TestUpstream & { connections: () => number }> {
  let connections = 0;
  const requests: SeenRequest[] = [];
  const server = net.createServer((socket) => {
    connections++;
    socket.once('data', (data: Buffer) => {
      const [line] = data.toString('latin1').split('\r\n');
      const [method, url] = line!.split(' ');
      requests.push({ method: method!, url: url!, headers: {}, rawHeaders: [], body: Buffer.alloc(0) });
      socket.destroy();
    });
  });
  server.listen(path);
  await once(server, 'listening');
  return { path, address: `unix:${path}`, requests, connections: () => connections, close: () => closeServer(server) };
}

/** Accepts requests and never answers (for read timeouts). */
export async function hangingUpstream(path: string): Promise<TestUpstream> {
  return httpUpstream(path, () => {});
}

async function closeServer(server: net.Server): Promise<void> {
  if (server instanceof http.Server) server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
