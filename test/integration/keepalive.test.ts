import { once } from 'node:events';
import http from 'node:http';
import { request } from 'undici';
import { beforeEach, describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';

/** Upstream keep-alive as nginx's `keepalive N`: idle connections kept, extra ones closed. */
describe('upstream keepalive', () => {
  const fx = useProxyFixture();
  let server: http.Server;
  let connections: number;

  beforeEach(async () => {
    connections = 0;
    server = http.createServer((req, res) => {
      const delay = Number(new URL(req.url!, 'http://x').searchParams.get('delay') ?? 0);
      setTimeout(() => res.end('ok'), delay);
    });
    server.keepAliveTimeout = 10_000;
    server.on('connection', () => connections++);
    server.listen(fx.tmp.path('app.sock'));
    await once(server, 'listening');
    fx.onCleanup(async () => {
      server.closeAllConnections();
      server.close();
    });
  });

  // The settings continue the upstream block that the fixture's server list ends.
  const start = async (keepalive: number, more = '') => {
    await fx.start([`unix:${fx.tmp.path('app.sock')}`], `  keepalive: ${keepalive}\n${more}`);
  };

  const get = async (path = '/') => (await request(`${fx.proxy!.url}${path}`)).body.text();

  it('reuses one connection for sequential requests', async () => {
    await start(32);
    for (let i = 0; i < 10; i++) expect(await get()).toBe('ok');
    expect(connections).toBe(1);
  });

  it('keepalive: 0 opens a new connection per request', async () => {
    await start(0);
    for (let i = 0; i < 5; i++) expect(await get()).toBe('ok');
    expect(connections).toBe(5);
  });

  it('keeps at most N idle connections after a burst', async () => {
    await start(2);
    await Promise.all(Array.from({ length: 6 }, () => get('/?delay=200')));
    expect(connections).toBe(6);
    // The 4 connections past keepalive=2 are closed once their responses are done.
    const openConnections = () =>
      new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    const deadline = Date.now() + 1000;
    while ((await openConnections()) > 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await openConnections()).toBe(2);
    // The next request reuses a kept connection.
    expect(await get()).toBe('ok');
    expect(connections).toBe(6);
  });

  it('keepalive_requests closes a connection after that many requests', async () => {
    await start(32, '  keepalive_requests: 3\n');
    for (let i = 0; i < 7; i++) expect(await get()).toBe('ok');
    expect(connections).toBe(3);
  });

  it('keepalive_timeout closes an idle connection after that long, even when the app allows more', async () => {
    await start(32, '  keepalive_timeout: 300ms\n');
    expect(await get()).toBe('ok');
    expect(await get()).toBe('ok');
    expect(connections).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(await get()).toBe('ok');
    expect(connections).toBe(2);
  });
});
