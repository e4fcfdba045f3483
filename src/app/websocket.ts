/**
 * The sample app's WebSocket side: `/ws` is an echo over the `ws` package, the way an
 * async Gunicorn worker (uvicorn, gevent-websocket) serves one. Any other upgrade request
 * is answered as a plain request by the HTTP endpoints, as an app that does not speak
 * WebSocket answers it (a WSGI app never sees the Upgrade), so `/status/403` refuses with
 * 403 and its body, and `/echo` shows the upgrade request as the app received it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { responseForUpgrade } from '../server/http-server.js';

/** RFC 6455 §7.4.1: the endpoint is going away (server shutdown). */
const GOING_AWAY = 1001;

export interface UpgradeEndpoints {
  /** node:http's 'upgrade' listener. */
  handle(req: IncomingMessage, socket: Socket, head: Buffer): void;
  /** Closes every open WebSocket with 1001 Going Away: the server is stopping. */
  close(): void;
}

export function createUpgradeEndpoints(handleRequest: (req: IncomingMessage, res: ServerResponse) => void): UpgradeEndpoints {
  const wss = new WebSocketServer({ noServer: true });
  // Which worker answered, as every HTTP response of the app says (tests of retries use it).
  wss.on('headers', (headers) => headers.push(`x-app-pid: ${process.pid}`));
  return {
    handle: (req, socket, head) => {
      if (new URL(req.url ?? '/', 'http://app.invalid').pathname !== '/ws') {
        handleRequest(req, responseForUpgrade(req, socket));
        return;
      }
      // ws answers a bad handshake (no Sec-WebSocket-Key, a wrong version) with 400 itself.
      socket.on('error', () => {});
      wss.handleUpgrade(req, socket, head, (ws) => {
        // Text stays text and binary stays binary, so a test sees any frame the proxy altered.
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
    },
    close: () => {
      for (const ws of wss.clients) ws.close(GOING_AWAY, 'server shutting down');
    },
  };
}
