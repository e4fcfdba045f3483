import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/defaults.js';
import type { ProxySettings } from '../../src/config/types.js';
import { Attempt } from '../../src/forward/attempt.js';
import { UpstreamConnections } from '../../src/forward/connections.js';
import { Peer } from '../../src/upstream/peer.js';
import { makeTempDir } from '../helpers/temp.js';

/**
 * One attempt against a real app on a Unix socket, driven as a slow client drives it: the
 * response is paused after every chunk and resumed a moment later. The app sends a
 * `Connection: close` response and closes at once, as Gunicorn's sync workers do, so its
 * FIN arrives while the response is held back. undici 7 asserted then, from a socket event
 * handler, and the process died (nodejs/undici#5360); Attempt.onUpstreamEnd lets the
 * parser finish first.
 */
describe('an app that closes while its response is held back', () => {
  it('the response arrives whole and the process lives', async () => {
    const tmp = makeTempDir();
    const path = tmp.path('app.sock');
    const body = Buffer.alloc(1024 * 1024, 'x');
    const app = net.createServer((socket) => {
      socket.once('data', () => {
        const head = `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
        socket.end(Buffer.concat([Buffer.from(head), body]));
      });
    });
    app.listen(path);
    await once(app, 'listening');

    const peer = new Peer({ ...DEFAULTS.server, address: { kind: 'unix', path }, written: `unix:${path}` });
    const connections = new UpstreamConnections(
      { ...DEFAULTS.upstream, servers: [peer.config] },
      { ...DEFAULTS.proxy, nextUpstream: new Set(DEFAULTS.proxy.nextUpstream) } satisfies ProxySettings,
    );
    let received = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        new Attempt(peer, { method: 'GET', path: '/', headers: ['host', 'app'], body: null }, connections.acquire(peer), {
          onAttemptHeaders: () => {},
          onAttemptData: (attempt, chunk) => {
            received += chunk.length;
            attempt.pause();
            setTimeout(() => attempt.resume(), 1);
          },
          onAttemptEnd: () => resolve(),
          onAttemptError: (_attempt, error) => reject(error),
          onAttemptUpgrade: () => reject(new Error('not an upgrade request')),
        });
      });
      expect(received).toBe(body.length);
    } finally {
      await connections.close();
      app.close();
      tmp.remove();
    }
  });
});
