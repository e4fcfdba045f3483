/**
 * In-process upstreams for the WebSocket tests, on Unix sockets, recording the upgrade
 * requests they saw: a WebSocket server on the `ws` package, and a raw one that writes its
 * own 101 and then does exactly what a test needs with the connection.
 */
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SeenRequest, TestUpstream } from './upstreams.js';

export interface WsUpstream extends TestUpstream {
  /** The app's side of each WebSocket, in the order they opened. */
  readonly sockets: WebSocket[];
}

/**
 * A WebSocket server answering every upgrade request; `onOpen` decides what it does with
 * the socket (by default it echoes each message back).
 */
export async function wsUpstream(path: string, onOpen: (ws: WebSocket) => void = echo): Promise<WsUpstream> {
  const requests: SeenRequest[] = [];
  const sockets: WebSocket[] = [];
  const wss = new WebSocketServer({ noServer: true });
  const server = http.createServer((_req, res) => res.writeHead(426, { upgrade: 'websocket' }).end('WebSocket only\n'));
  server.on('upgrade', (req, socket, head) => {
    requests.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) });
    socket.on('error', () => {});
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.push(ws);
      ws.on('error', () => {});
      onOpen(ws);
    });
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    address: `unix:${path}`,
    requests,
    sockets,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function echo(ws: WebSocket): void {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

/** A raw upstream: where it listens, and the request heads it received. */
export interface Raw101Upstream {
  /** The server line for the config: "unix:/tmp/…/a.sock" or "127.0.0.1:PORT". */
  readonly address: string;
  readonly heads: string[];
  close(): Promise<void>;
}

/**
 * A raw server (on a Unix socket path, or on 127.0.0.1 for `'tcp'`) that answers any
 * upgrade request with a bare 101, no WebSocket handshake (for raw clients), then hands
 * the connection to `tunnel` (which adds its listeners; reading resumes after it), with
 * whatever followed the request head unshifted.
 */
export async function raw101Upstream(listenOn: string, tunnel: (socket: net.Socket) => void): Promise<Raw101Upstream> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  // Half-open: the tests drive half-closes, this side's FIN is the test's to send.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.pause();
      heads.push(received.subarray(0, end).toString('latin1'));
      if (received.length > end + 4) socket.unshift(received.subarray(end + 4));
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw-test\r\nConnection: Upgrade\r\n\r\n', () => {
        tunnel(socket);
        socket.resume();
      });
    };
    socket.on('data', onData);
  });
  if (listenOn === 'tcp') server.listen(0, '127.0.0.1');
  else server.listen(listenOn);
  await once(server, 'listening');
  const address = listenOn === 'tcp' ? `127.0.0.1:${(server.address() as net.AddressInfo).port}` : `unix:${listenOn}`;
  return {
    address,
    heads,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
