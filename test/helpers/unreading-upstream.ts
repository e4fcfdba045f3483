/**
 * An upstream that accepts a request and then stops reading it: for proxy_send_timeout,
 * which is about the upstream not taking the request body (an app stuck before it reads,
 * or a full accept-side buffer), not about the client.
 */
import { once } from 'node:events';
import net from 'node:net';
import type { RawUpstream } from './misbehaving-upstreams.js';
import type { SeenRequest } from './upstreams.js';

/**
 * A `net` server on `path` that reads each connection until the end of the request head,
 * records the request (method, target, headers; no body), then pauses the socket for good
 * and never answers: once the kernel buffers are full, the proxy's writes stall.
 */
export async function unreadingUpstream(path: string): Promise<RawUpstream> {
  let connections = 0;
  const requests: SeenRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // The proxy resets the connection when it gives up: expected.
    socket.on('error', () => {});
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      const [requestLine = '', ...fields] = received.subarray(0, end).toString('latin1').split('\r\n');
      const [method = '', url = ''] = requestLine.split(' ');
      const rawHeaders = fields.flatMap((field) => {
        const colon = field.indexOf(':');
        return [field.slice(0, colon), field.slice(colon + 1).trim()];
      });
      const headers = Object.fromEntries(
        rawHeaders.flatMap((value, i) => (i % 2 === 0 ? [[value.toLowerCase(), rawHeaders[i + 1]!]] : [])),
      );
      requests.push({ method, url, headers, rawHeaders, body: received.subarray(end + 4) });
    };
    socket.on('data', onData);
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    address: `unix:${path}`,
    requests,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
