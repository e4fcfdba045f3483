import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { killAll } from '../helpers/node-process.js';
import { mib, readRss } from '../helpers/rss.js';
import { echoUpstream, startStreamProxy, type StreamUpstream, streamClient, streamUpstream } from '../helpers/stream.js';
import { makeTempDir, type TempDir } from '../helpers/temp.js';
import { pollUntil } from '../helpers/wait.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A payload made as it is written, never held whole: chunk i is `i` followed by pattern bytes. */
function chunkAt(index: number, size: number): Buffer {
  const chunk = Buffer.alloc(size, index % 251);
  chunk.writeUInt32BE(index, 0);
  return chunk;
}

/**
 * Writes `total` bytes in 64 KiB chunks, waiting for 'drain' whenever the socket's buffer
 * is full, as a well-behaved sender does. `flushed()` counts the bytes handed to the
 * kernel so far: while the far end does not read, it stops at what the buffers on the way
 * hold.
 */
function pump(socket: net.Socket, total: number): { flushed: () => number; sha256: Promise<string>; done: Promise<void> } {
  let flushed = 0;
  const hash = createHash('sha256');
  const done = (async () => {
    for (let offset = 0, index = 0; offset < total; offset += 64 * KiB, index++) {
      const chunk = chunkAt(index, Math.min(64 * KiB, total - offset));
      hash.update(chunk);
      if (!socket.write(chunk, () => (flushed += chunk.length))) {
        await new Promise<void>((resolve, reject) => {
          const onClose = (): void => reject(new Error('closed while writing'));
          socket.once('close', onClose);
          socket.once('drain', () => {
            socket.off('close', onClose);
            resolve();
          });
        });
      }
    }
  })();
  return { flushed: () => flushed, sha256: done.then(() => hash.digest('hex')), done };
}

function sha256(buffer: Buffer): string {
  return createHash('sha256').update(buffer).digest('hex');
}

/** Resolves once `read()` has not changed for `quietMs`: the sender has stalled. */
async function stalled(read: () => number, quietMs = 600): Promise<number> {
  let last = -1;
  let since = performance.now();
  return pollUntil(
    'the transfer to stall',
    () => {
      const now = read();
      if (now !== last) {
        last = now;
        since = performance.now();
        return undefined;
      }
      return performance.now() - since >= quietMs ? now : undefined;
    },
    15_000,
  );
}

/**
 * The stream proxy relays bytes unchanged, in both directions, with backpressure, and
 * passes each side's FIN on (half-close): nginx's ngx_stream_proxy_process with
 * proxy_half_close on.
 */
describe('stream relay', () => {
  let tmp: TempDir;
  const upstreams: { close(): Promise<void> }[] = [];

  beforeEach(() => {
    tmp = makeTempDir();
  });

  afterEach(async () => {
    await killAll();
    await Promise.all(upstreams.splice(0).map((upstream) => upstream.close()));
    tmp.remove();
  });

  async function track(upstream: Promise<StreamUpstream>): Promise<StreamUpstream> {
    const started = await upstream;
    upstreams.push(started);
    return started;
  }

  it('8 MiB of random bytes go through an echo unchanged, both ways, and the access log counts them', async () => {
    const echo = await track(echoUpstream(tmp.path('echo.sock')));
    const proxy = await startStreamProxy(tmp, [echo.address]);
    const payload = randomBytes(8 * MiB);
    const client = await streamClient(proxy.port);
    client.socket.end(payload);
    await client.waitFor('the whole echo and the FIN', () => client.ended(), 20_000);

    expect(client.received().length).toBe(payload.length);
    expect(sha256(client.received())).toBe(sha256(payload));
    expect(echo.connections).toHaveLength(1);
    expect(sha256(echo.connections[0]!.received())).toBe(sha256(payload));

    const [session] = await proxy.waitForSessions(1);
    expect(session).toMatchObject({
      status: 200,
      bytes_received: payload.length,
      bytes_sent: payload.length,
      upstream_addr: echo.address,
      upstream_bytes_sent: String(payload.length),
      upstream_bytes_received: String(payload.length),
    });
  });

  it('half-close, client to app: the client shuts down its write side, the app sees the FIN and its reply still arrives', async () => {
    // An app that answers only once the request is complete, i.e. at the client's FIN.
    const app = await track(
      streamUpstream(tmp.path('app.sock'), ({ socket, received }) =>
        socket.once('end', () => socket.end(`got ${received().length} bytes: ${received().toString()}`)),
      ),
    );
    const proxy = await startStreamProxy(tmp, [app.address]);
    const client = await streamClient(proxy.port);
    client.socket.end('the whole request'); // shutdown(SHUT_WR)
    await client.waitFor('the reply and the FIN', () => client.ended());
    expect(client.received().toString()).toBe('got 17 bytes: the whole request');
    expect(app.connections[0]!.ended()).toBe(true);
    const [session] = await proxy.waitForSessions(1);
    expect(session).toMatchObject({ status: 200, bytes_received: 17, bytes_sent: 31 });
  });

  it('half-close, app to client: the app shuts down its write side, the client sees the FIN and can still send', async () => {
    // An app that sends a banner, shuts down its write side at once, and keeps reading.
    const app = await track(streamUpstream(tmp.path('app.sock'), ({ socket }) => socket.end('banner, then FIN\n')));
    const proxy = await startStreamProxy(tmp, [app.address]);
    const client = await streamClient(proxy.port);
    await client.waitFor("the app's banner and FIN", () => client.ended());
    expect(client.received().toString()).toBe('banner, then FIN\n');
    expect(client.closed()).toBe(false);

    client.socket.end('sent after the FIN');
    const connection = app.connections[0]!;
    await client.waitFor('the late bytes and the FIN at the app', () => connection.ended());
    expect(connection.received().toString()).toBe('sent after the FIN');
    await client.waitFor('the session to close', () => client.closed());
    const [session] = await proxy.waitForSessions(1);
    expect(session).toMatchObject({ status: 200, bytes_received: 18, bytes_sent: 17 });
  });

  it('an app that resets the connection: both sides are closed, nginx\'s recv() line names the upstream, status 200', async () => {
    // Closed with the client's bytes unread: on a Unix socket the proxy's next read gets ECONNRESET.
    const resetting = net.createServer({ pauseOnConnect: true }, (socket) => setTimeout(() => socket.destroy(), 200));
    resetting.listen(tmp.path('reset.sock'));
    await once(resetting, 'listening');
    upstreams.push({ close: () => new Promise<void>((resolve) => resetting.close(() => resolve())) });
    const proxy = await startStreamProxy(tmp, [`unix:${tmp.path('reset.sock')}`]);
    const client = await streamClient(proxy.port);
    client.socket.write('unread');
    await client.waitFor('the proxy to close the client', () => client.ended() || client.closed());
    const line = await proxy.waitForError('recv() failed');
    expect(line.msg).toBe(
      `recv() failed (104: Connection reset by peer) while proxying and reading from upstream, client: 127.0.0.1, ` +
        `server: 127.0.0.1:${proxy.port}, upstream: "unix:${tmp.path('reset.sock')}", bytes from/to client:6/0, bytes from/to upstream:0/6`,
    );
    expect(line.level).toBe(50);
    const [session] = await proxy.waitForSessions(1);
    expect(session).toMatchObject({ status: 200, bytes_received: 6, bytes_sent: 0 });
  });

  // Both legs on Unix sockets (the proxy listens on one too): their kernel buffers are about
  // 200 KiB each, so what a sender can hand over before it is held back is small and known.
  // A proxy that read regardless of its reader would take the whole 64 MiB.
  const TOTAL = 64 * MiB;
  const HELD_BACK = 8 * MiB;

  it('backpressure, client to app: an app that stops reading holds the client back; nothing is lost', async () => {
    const held = await track(streamUpstream(tmp.path('held.sock'), ({ socket }) => socket.pause()));
    const listen = tmp.path('proxy.sock');
    const proxy = await startStreamProxy(tmp, [held.address], { listen: `unix:${listen}` });
    const rssBefore = readRss(proxy.process.pid);
    const client = await streamClient(listen);
    const sender = pump(client.socket, TOTAL);

    const handedOver = await stalled(sender.flushed);
    expect(handedOver, `${mib(handedOver)} MiB left the client`).toBeLessThan(HELD_BACK);
    const growth = readRss(proxy.process.pid) - rssBefore;
    expect(growth, `proxy RSS grew by ${mib(growth)} MiB`).toBeLessThan(32 * MiB);

    const connection = held.connections[0]!;
    connection.socket.resume();
    await sender.done;
    client.socket.end();
    await client.waitFor('everything and the FIN at the app', () => connection.ended(), 30_000);
    expect(connection.received().length).toBe(TOTAL);
    expect(sha256(connection.received())).toBe(await sender.sha256);
  });

  it('backpressure, app to client: a client that stops reading holds the app back; nothing is lost', async () => {
    let sender: ReturnType<typeof pump> | undefined;
    const source = await track(
      streamUpstream(tmp.path('source.sock'), ({ socket }) => {
        sender = pump(socket, TOTAL);
        void sender.done.then(() => socket.end());
      }),
    );
    const listen = tmp.path('proxy.sock');
    const proxy = await startStreamProxy(tmp, [source.address], { listen: `unix:${listen}` });
    const rssBefore = readRss(proxy.process.pid);
    const client = await streamClient(listen);
    client.socket.pause();
    await pollUntil('the app to start sending', () => sender, 5_000);

    const handedOver = await stalled(sender!.flushed);
    expect(handedOver, `${mib(handedOver)} MiB left the app`).toBeLessThan(HELD_BACK);
    const growth = readRss(proxy.process.pid) - rssBefore;
    expect(growth, `proxy RSS grew by ${mib(growth)} MiB`).toBeLessThan(32 * MiB);

    client.socket.resume();
    await client.waitFor('everything and the FIN', () => client.ended(), 30_000);
    expect(client.received().length).toBe(TOTAL);
    expect(sha256(client.received())).toBe(await sender!.sha256);
  });
});
