import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Tunnel, type TunnelTimeouts } from '../../src/tunnel.js';
import { until } from '../helpers/wait.js';

/**
 * The tunnel between two real socket pairs on loopback: the test holds the far ends (what
 * the client and the app see), the tunnel the near ones (what the proxy holds).
 */
interface Ends {
  /** The client's own socket. */
  readonly client: net.Socket;
  /** The app's own socket. */
  readonly app: net.Socket;
  /** What the proxy holds: the accepted client connection and its connection to the app. */
  readonly proxyClient: net.Socket;
  readonly proxyUpstream: net.Socket;
}

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A connected pair: [the connecting side, the accepted side]; the accepted side as node:http's (allowHalfOpen). */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const connecting = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(connecting, 'connect');
  const [socket] = await accepted;
  sockets.push(connecting, socket);
  // The tunnel's resets are what some tests are about; they are not failures of the test.
  connecting.on('error', () => {});
  return [connecting, socket];
}

async function ends(): Promise<Ends> {
  const [client, proxyClient] = await pair();
  const [proxyUpstream, app] = await pair();
  // As undici's connector makes it: net.connect's default, no half-open.
  proxyUpstream.allowHalfOpen = false;
  // A client that may send after the app's FIN (a WebSocket client finishing its close).
  client.allowHalfOpen = true;
  return { client, app, proxyClient, proxyUpstream };
}

const LONG: TunnelTimeouts = { idleMs: 10_000, sendMs: 10_000 };

/** Everything `socket` receives, as text, and whether it saw the peer's FIN. */
function collect(socket: net.Socket): { text: () => string; ended: () => boolean } {
  let text = '';
  let ended = false;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('end', () => (ended = true));
  return { text: () => text, ended: () => ended };
}

describe('Tunnel', () => {
  it('relays both ways, sends what the client sent before the 101 first, and counts the bytes', async () => {
    const e = await ends();
    const atApp = collect(e.app);
    const atClient = collect(e.client);
    const tunnel = new Tunnel(e.proxyClient, e.proxyUpstream, Buffer.from('early '), LONG);
    e.client.write('hello');
    e.app.write('welcome!');
    await until(() => atApp.text() === 'early hello' && atClient.text() === 'welcome!', 2_000, 'both directions');
    e.client.end();
    await until(atApp.ended, 2_000, 'the app to see the client\'s FIN');
    e.app.end();
    const result = await tunnel.ended;
    // The app's FIN came last.
    expect(result).toEqual({ ending: { kind: 'closed', side: 'upstream' }, bytesToClient: 8, bytesToUpstream: 11 });
  });

  it('half-close: the client\'s FIN reaches the app, which can still answer, then close', async () => {
    const e = await ends();
    const atApp = collect(e.app);
    const atClient = collect(e.client);
    const tunnel = new Tunnel(e.proxyClient, e.proxyUpstream, Buffer.alloc(0), LONG);
    e.client.end('question');
    await until(atApp.ended, 2_000, 'the app to see the client\'s FIN');
    expect(atApp.text()).toBe('question');
    e.app.end('answer after your FIN');
    await until(atClient.ended, 2_000, 'the client to see the app\'s FIN');
    expect(atClient.text()).toBe('answer after your FIN');
    expect((await tunnel.ended).ending).toEqual({ kind: 'closed', side: 'upstream' });
  });

  it('half-close the other way: the app\'s FIN reaches the client, which can still send', async () => {
    const e = await ends();
    const atApp = collect(e.app);
    const atClient = collect(e.client);
    const tunnel = new Tunnel(e.proxyClient, e.proxyUpstream, Buffer.alloc(0), LONG);
    e.app.end('bye');
    await until(atClient.ended, 2_000, 'the client to see the app\'s FIN');
    e.client.end('last words');
    await until(atApp.ended, 2_000, 'the app to see the client\'s FIN');
    expect(atApp.text()).toBe('last words');
    expect(atClient.text()).toBe('bye');
    expect((await tunnel.ended).ending).toEqual({ kind: 'closed', side: 'client' });
  });

  it('closes an idle tunnel after idleMs; traffic in either direction re-arms the timer', async () => {
    const e = await ends();
    collect(e.app);
    collect(e.client);
    const tunnel = new Tunnel(e.proxyClient, e.proxyUpstream, Buffer.alloc(0), { idleMs: 300, sendMs: 10_000 });
    let settled = false;
    void tunnel.ended.then(() => (settled = true));
    const started = performance.now();
    // Six writes 150 ms apart, alternating sides: 900 ms of life with a 300 ms idle timeout.
    for (let i = 0; i < 6; i++) {
      (i % 2 === 0 ? e.client : e.app).write('x');
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(settled).toBe(false);
    }
    const result = await tunnel.ended;
    expect(result.ending).toEqual({ kind: 'idle_timeout' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
    await until(() => e.client.destroyed || e.client.readableEnded, 2_000, 'the client to be closed');
  });

  it('backpressure: an app that stops reading pauses the client, then send_timeout closes the tunnel', async () => {
    const e = await ends();
    e.app.pause();
    const tunnel = new Tunnel(e.proxyClient, e.proxyUpstream, Buffer.alloc(0), { idleMs: 10_000, sendMs: 1_000 });
    // More than the kernel buffers on both sides of the loopback hold.
    const offered = Buffer.alloc(64 * 1024 * 1024, 'a');
    e.client.write(offered);
    await until(() => e.proxyClient.isPaused(), 2_000, 'the tunnel to pause the client');
    const result = await tunnel.ended;
    expect(result.ending).toEqual({ kind: 'send_timeout', side: 'upstream' });
    // The tunnel stopped reading: what the app did not take stayed with the client.
    expect(result.bytesToUpstream).toBeLessThan(offered.length);
  });

  it('a reset from the app ends the tunnel as an upstream error and closes the client', async () => {
    const e = await ends();
    const atClient = collect(e.client);
    const tunnel = new Tunnel(e.proxyClient, e.proxyUpstream, Buffer.alloc(0), LONG);
    e.app.resetAndDestroy();
    const result = await tunnel.ended;
    expect(result.ending).toMatchObject({ kind: 'error', side: 'upstream', error: { code: 'ECONNRESET' } });
    await until(() => atClient.ended() || e.client.destroyed, 2_000, 'the client to be closed');
  });

  it('destroy() closes both connections now, and the tunnel ends as a shutdown', async () => {
    const e = await ends();
    const atApp = collect(e.app);
    const atClient = collect(e.client);
    const tunnel = new Tunnel(e.proxyClient, e.proxyUpstream, Buffer.alloc(0), LONG);
    tunnel.destroy();
    expect((await tunnel.ended).ending).toEqual({ kind: 'shutdown' });
    expect(e.proxyClient.destroyed && e.proxyUpstream.destroyed).toBe(true);
    await until(() => (atApp.ended() || e.app.destroyed) && (atClient.ended() || e.client.destroyed), 2_000, 'both ends to see the close');
  });

  it('a client that closed before the tunnel began (gone while its upstream was connecting) ends it, and the upstream is closed', async () => {
    const e = await ends();
    const atApp = collect(e.app);
    e.proxyClient.destroy();
    await once(e.proxyClient, 'close');
    const tunnel = new Tunnel(e.proxyClient, e.proxyUpstream, Buffer.alloc(0), LONG);
    expect((await tunnel.ended).ending).toEqual({ kind: 'closed', side: 'client' });
    expect(e.proxyUpstream.destroyed).toBe(true);
    await until(() => atApp.ended() || e.app.destroyed, 2_000, 'the app to see the close');
  });

  it('a client accepted paused (pauseOnConnect) is read once the tunnel begins', async () => {
    const e = await ends();
    const atApp = collect(e.app);
    e.proxyClient.pause();
    e.client.write('held by the kernel until now');
    new Tunnel(e.proxyClient, e.proxyUpstream, Buffer.alloc(0), LONG);
    await until(() => atApp.text() === 'held by the kernel until now', 2_000, 'the app to get what the client sent');
  });
});
