/**
 * The http-proxy contender: the usual Node reverse proxy, as a user would set it up for
 * a Unix-socket app, with a keep-alive agent holding at most 32 idle connections (the
 * same cap as sockproxy's and nginx's `keepalive 32`) and X-Forwarded-* headers on.
 * One process, like the others. Benchmark baseline only: sockproxy does not use it.
 *
 *   node http-proxy-server.js PORT SOCKET_PATH
 */
import http from 'node:http';
import httpProxy from 'http-proxy';

const [portText, socketPath] = process.argv.slice(2);
if (portText === undefined || socketPath === undefined) {
  process.stderr.write('usage: http-proxy-server.js PORT SOCKET_PATH\n');
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 32 });
const proxy = httpProxy.createProxyServer({
  target: { socketPath, host: 'localhost', port: 80 },
  agent,
  xfwd: true,
});
proxy.on('error', (err, _req, res) => {
  process.stderr.write(`http-proxy: ${err.message}\n`);
  if (res instanceof http.ServerResponse && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('Bad Gateway\n');
  } else {
    res.destroy();
  }
});

const server = http.createServer((req, res) => proxy.web(req, res));
server.listen(Number(portText), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
