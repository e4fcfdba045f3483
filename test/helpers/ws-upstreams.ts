/**
 * In-process upstreams for the WebSocket tests, on Unix sockets, recording the upgrade
 * requests they saw: a WebSocket server on the `ws` package, and a raw one that writes its
 * own 101 and then does exactly what a test needs with the connection.
 */
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { type RawUpstream, rawUpstream } from './misbehaving-upstreams.js';
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

/**
 * A raw server that answers any upgrade request with a bare 101 (no WebSocket handshake:
 * for raw clients), then hands the connection to `tunnel`.
 */
export function raw101Upstream(path: string, tunnel: (socket: net.Socket) => void): Promise<RawUpstream> {
  return rawUpstream(
    path,
    (socket) => {
      // The tests drive half-closes: this side's FIN is the test's to send.
      socket.allowHalfOpen = true;
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw-test\r\nConnection: Upgrade\r\n\r\n', () => tunnel(socket));
    },
    { afterHead: true },
  );
}
