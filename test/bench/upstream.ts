/**
 * The benchmark's upstream: the smallest node:http app that serves the three scenarios,
 * so that what is measured is the proxy in front of it, not the app. One process, on a
 * Unix socket and on TCP loopback at once (same code and settings for both paths).
 *
 *   GET /       13 bytes ("Hello, world!")
 *   GET /16k    16 KiB
 *   POST /echo  the request body back (the bench sends 64 KiB)
 *
 * Started by the bench with an IPC channel: it sends {ready: {port}} once listening, and
 * answers each 'stats' message with the connections accepted and requests served so far,
 * so the bench can tell how many new upstream connections a proxy opened per request.
 */
import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

const HELLO = Buffer.from('Hello, world!');
const SIXTEEN_K = Buffer.alloc(16 * 1024, 'x');

let connections = 0;
let requests = 0;

function handle(req: IncomingMessage, res: ServerResponse): void {
  requests++;
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': HELLO.length });
    res.end(HELLO);
    return;
  }
  if (req.method === 'GET' && req.url === '/16k') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': SIXTEEN_K.length });
    res.end(SIXTEEN_K);
    return;
  }
  if (req.method === 'POST' && req.url === '/echo') {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': length });
      res.end(Buffer.concat(chunks, length));
    });
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 });
  res.end('not found\n');
}

function server(): http.Server {
  const s = http.createServer(handle);
  // Longer than any run: the proxies, not the app, decide when an idle connection closes.
  s.keepAliveTimeout = 120_000;
  s.on('connection', () => connections++);
  return s;
}

const socketPath = process.argv[2];
if (socketPath === undefined) {
  process.stderr.write('usage: upstream.js SOCKET_PATH\n');
  process.exit(2);
}
fs.rmSync(socketPath, { force: true });

const unix = server();
const tcp = server();
// Gunicorn's default backlog (Node's is 511): with 1000 clients, nginx's and sockproxy's
// `keepalive 32` open hundreds of new connections at once, and a full queue makes a Unix
// socket connect() fail at once with EAGAIN (nginx: 502), where TCP would retry the SYN.
const BACKLOG = 2048;
unix.listen({ path: socketPath, backlog: BACKLOG }, () => {
  tcp.listen({ port: 0, host: '127.0.0.1', backlog: BACKLOG }, () => {
    const address = tcp.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    process.send?.({ ready: { port } });
  });
});

process.on('message', (message) => {
  if (message === 'stats') process.send?.({ stats: { connections, requests } });
});
// The bench going away (even killed) closes the channel: never outlive it.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
