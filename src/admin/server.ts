/**
 * The admin endpoint (`admin.listen`): GET /status (JSON) and GET /metrics (Prometheus
 * text), nothing else. It runs in the only process, or in the primary with workers, where
 * the answers gather every worker's part.
 */
import http from 'node:http';
import { formatListen } from '../config/listen.js';
import type { ListenAddress } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { listen } from '../server/listen.js';
import type { StatusDocument } from './status.js';

export interface AdminSource {
  status(): Promise<StatusDocument>;
  metrics(): Promise<{ contentType: string; text: string }>;
}

export interface AdminServer {
  /** As nginx prints a listen address. */
  readonly address: string;
  close(): Promise<void>;
}

const ROUTES = new Set(['/status', '/metrics']);

/** Binds the admin listener; rejects with a ListenError, as the proxy's own listeners do. */
export async function startAdmin(address: ListenAddress, source: AdminSource, errorLog: Logger): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    void answer(req, res, source, errorLog);
  });
  // Scrapers keep connections open; they must not hold a stop back.
  server.keepAliveTimeout = 5_000;
  await listen(server, address);
  return {
    address: formatListen(address),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function answer(req: http.IncomingMessage, res: http.ServerResponse, source: AdminSource, errorLog: Logger): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://admin').pathname;
  if (!ROUTES.has(path)) return plain(res, 404, 'Not Found: the admin endpoint serves GET /status and GET /metrics\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return plain(res, 405, `Method Not Allowed: ${path} answers GET\n`);
  }
  try {
    if (path === '/status') {
      send(res, 'application/json; charset=utf-8', `${JSON.stringify(await source.status(), null, 2)}\n`, req.method === 'HEAD');
    } else {
      const { contentType, text } = await source.metrics();
      send(res, contentType, text, req.method === 'HEAD');
    }
  } catch (err) {
    errorLog.error({ err }, `admin ${path} failed: ${(err as Error).message}`);
    if (!res.headersSent) plain(res, 500, `Internal Server Error: ${path} could not be built (see the error log)\n`);
  }
}

function send(res: http.ServerResponse, contentType: string, body: string, headOnly: boolean): void {
  res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(headOnly ? undefined : body);
}

function plain(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
