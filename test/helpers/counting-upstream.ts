import http from 'node:http';
import { once } from 'node:events';

/** An app on a Unix socket that counts the connections it accepted, and answers each request with its method and URL. */
export interface CountingUpstream {
  readonly address: string;
  /** Connections accepted so far: 0 means the proxy never contacted it. */
  connections(): number;
  /** "METHOD URL" of each request, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

export async function countingUpstream(path: string): Promise<CountingUpstream> {
  let connections = 0;
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const seen = `${req.method} ${req.url}`;
    requests.push(seen);
    req.resume();
    req.on('end', () => res.end(`${seen}\n`));
  });
  server.on('connection', () => connections++);
  server.listen(path);
  await once(server, 'listening');
  return {
    address: `unix:${path}`,
    connections: () => connections,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
