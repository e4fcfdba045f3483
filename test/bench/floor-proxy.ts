/**
 * Not a real proxy: the least a Node reverse proxy can do per request, as a reference
 * for sockproxy's hot path (`npm run bench -- --floor`). One node:http server, one undici
 * Pool to the Unix socket (unlimited keep-alive connections, so none is ever closed),
 * hop-by-hop headers dropped and nothing else: no request id, no X-Forwarded-*, no
 * buffering, no retries, no logs, no backpressure (fine for these small responses).
 *
 *   node floor-proxy.js PORT SOCKET_PATH
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { Pool } from 'undici';

const [portText, socketPath] = process.argv.slice(2);
if (portText === undefined || socketPath === undefined) {
  process.stderr.write('usage: floor-proxy.js PORT SOCKET_PATH\n');
  process.exit(2);
}

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);
const pool = new Pool('http://localhost', { socketPath, pipelining: 1, keepAliveTimeout: 60_000 });

function forward(req: IncomingMessage, res: ServerResponse): void {
  const headers: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!);
  }
  pool.dispatch(
    { method: req.method ?? 'GET', path: req.url ?? '/', headers, body: req.method === 'POST' ? req : null },
    {
      onConnect() {},
      onHeaders(status, rawHeaders) {
        const out: string[] = [];
        for (let i = 0; i < rawHeaders.length; i += 2) {
          const name = rawHeaders[i]!.toString('latin1');
          if (!HOP.has(name.toLowerCase())) out.push(name, rawHeaders[i + 1]!.toString('latin1'));
        }
        res.writeHead(status, out);
        return true;
      },
      onData(chunk) {
        res.write(chunk);
        return true;
      },
      onComplete() {
        res.end();
      },
      onError() {
        if (res.headersSent) res.destroy();
        else res.writeHead(502).end();
      },
    },
  );
}

http.createServer(forward).listen(Number(portText), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
