/**
 * The sample app's WebSocket side (src/app/websocket.ts), directly on its Unix socket:
 * what the proxy's WebSocket tests rely on the app doing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type AppProcess } from '../helpers/app-process.js';
import { killAll } from '../helpers/node-process.js';
import { makeTempDir, type TempDir } from '../helpers/temp.js';
import { closed, nextMessage, openWebSocket, refusalOf, terminateAll, type WebSocket } from '../helpers/websocket.js';

describe('sample app: WebSocket', () => {
  let tmp: TempDir;
  let app: AppProcess;
  let base: string;
  const clients = new Set<WebSocket>();

  beforeAll(async () => {
    tmp = makeTempDir();
    app = await startApp(['--bind', `unix:${tmp.path('app.sock')}`]);
    base = `ws+unix://${tmp.path('app.sock')}:`;
  });

  afterEach(() => terminateAll(clients));

  afterAll(async () => {
    await killAll();
    tmp.remove();
  });

  it('/ws echoes text frames as text and binary frames as binary; the 101 names the worker', async () => {
    const { ws, headers } = await openWebSocket(`${base}/ws`, clients);
    expect(headers['x-app-pid']).toBe(String(app.pid));
    ws.send('héllo');
    const text = await nextMessage(ws);
    expect(text).toEqual({ data: Buffer.from('héllo'), binary: false });
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    ws.send(bytes);
    expect(await nextMessage(ws)).toEqual({ data: bytes, binary: true });
  });

  it('an upgrade request to any other path is served as a plain request, with its body, then the connection closes', async () => {
    const refusal = await refusalOf(`${base}/status/403`);
    expect(refusal).toMatchObject({ status: 403, body: 'status 403\n' });
    expect(refusal.headers.connection).toBe('close');

    const echo = await refusalOf(`${base}/echo`);
    expect(echo.status).toBe(200);
    const seen = JSON.parse(echo.body) as { headers: Record<string, string> };
    expect(seen.headers.upgrade).toBe('websocket');
    expect(seen.headers['sec-websocket-key']).toMatch(/==$/);
  });

  it('SIGTERM closes open WebSockets with 1001 Going Away', async () => {
    const own = await startApp(['--bind', `unix:${tmp.path('own.sock')}`]);
    const { ws } = await openWebSocket(`ws+unix://${tmp.path('own.sock')}:/ws`, clients);
    own.child.kill('SIGTERM');
    expect(await closed(ws)).toEqual({ code: 1001, reason: 'server shutting down' });
    expect((await own.waitForExit()).code).toBe(0);
  });
});
