import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../helpers/app-process.js';
import { useProxyFixture } from '../helpers/fixture.js';
import { killAll } from '../helpers/node-process.js';
import { hasCompleteResponse, rawConnect } from '../helpers/raw-http.js';
import { refusalOf } from '../helpers/websocket.js';

/**
 * An upgrade the app does not accept: whatever it answers instead of 101 (status, headers,
 * body) reaches the client as it was sent, and the connection is closed after it.
 * undici's upgrade() helper would have turned such an answer into a "bad upgrade" error.
 */
describe('WebSocket: refusals pass through unchanged', () => {
  const fx = useProxyFixture();

  afterEach(killAll);

  async function proxiedApp() {
    const socketPath = fx.tmp.path('app.sock');
    await startApp(['--bind', `unix:${socketPath}`]);
    return fx.start([`unix:${socketPath}`]);
  }

  it('403 with its body, and the access log says 403', async () => {
    const proxy = await proxiedApp();
    const refusal = await refusalOf(`ws://127.0.0.1:${proxy.port}/status/403`);
    expect(refusal.status).toBe(403);
    expect(refusal.body).toBe('status 403\n');
    expect(refusal.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8', 'content-length': '11', connection: 'close' });
    expect(refusal.headers['x-app-pid']).toMatch(/^\d+$/);
    const line = await proxy.waitForLog((l) => l.request_uri === '/status/403' && 'status' in l);
    expect(line).toMatchObject({ status: 403, upstream_status: '403', body_bytes_sent: 11 });
  });

  it('ws\'s own 400 for a bad handshake, byte for byte, then the connection closes', async () => {
    const proxy = await proxiedApp();
    const client = await rawConnect(proxy.port);
    // No Sec-WebSocket-Key: ws refuses the handshake.
    client.socket.write('GET /ws HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n');
    const text = await client.waitClosed();
    expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(text).toMatch(/\r\nconnection: close\r\n/i);
    expect(text.endsWith('\r\n\r\nMissing or invalid Sec-WebSocket-Key header')).toBe(true);
    expect(hasCompleteResponse(text)).toBe(true);
  });

  it('an answer larger than the socket buffers (16 MB) arrives whole', async () => {
    const proxy = await proxiedApp();
    const refusal = await refusalOf(`ws://127.0.0.1:${proxy.port}/bytes/16000000`);
    expect(refusal.status).toBe(200);
    expect(refusal.body.length).toBe(16_000_000);
    expect(createHash('sha256').update(refusal.body, 'latin1').digest('hex')).toBe(refusal.headers['x-body-sha256']);
  });

  it('a keep-alive client that asks for an upgrade gets the refusal, then a closed connection', async () => {
    const proxy = await proxiedApp();
    const client = await rawConnect(proxy.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: example.test\r\n\r\n');
    await client.waitFor(hasCompleteResponse);
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 /);
    client.socket.write('GET /status/404 HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    const text = await client.waitClosed();
    const second = text.slice(text.indexOf('HTTP/1.1 404'));
    expect(second).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
    expect(second.endsWith('\r\n\r\nstatus 404\n')).toBe(true);
  });

  it('an upgrade request with a body: 501, the app is never asked', async () => {
    const proxy = await proxiedApp();
    const client = await rawConnect(proxy.port);
    client.socket.write('POST /ws HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello');
    const text = await client.waitClosed();
    expect(text).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(text).toContain('an upgrade request with a body is not supported');
    const line = await proxy.waitForLog((l) => l.request_uri === '/ws' && 'status' in l);
    expect(line).toMatchObject({ status: 501, upstream_addr: '-' });
  });
});
