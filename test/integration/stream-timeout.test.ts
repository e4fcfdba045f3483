import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { killAll } from '../helpers/node-process.js';
import { echoUpstream, startStreamProxy, streamClient, type StreamUpstream } from '../helpers/stream.js';
import { makeTempDir, type TempDir } from '../helpers/temp.js';

/**
 * proxy_timeout (`timeout`): the longest time a stream session may pass without a read or
 * a write on either connection. nginx re-arms it after every read or write, so it bounds
 * idleness, not the session.
 */
describe('stream: the idle timeout', () => {
  let tmp: TempDir;
  let echo: StreamUpstream;

  beforeEach(async () => {
    tmp = makeTempDir();
    echo = await echoUpstream(tmp.path('echo.sock'));
  });

  afterEach(async () => {
    await killAll();
    await echo.close();
    tmp.remove();
  });

  it('an idle session is closed on both sides after `timeout`, logged at info as nginx does, status 200', async () => {
    const proxy = await startStreamProxy(tmp, [echo.address], { settings: 'timeout: 1s' });
    const client = await streamClient(proxy.port);
    client.socket.write('ping');
    await client.waitFor('the echo', () => client.received().toString() === 'ping');
    const idleFrom = performance.now();
    await client.waitFor('the proxy to close the idle session', () => client.ended(), 6_000);
    const idleMs = performance.now() - idleFrom;
    expect(idleMs).toBeGreaterThanOrEqual(900);
    expect(idleMs).toBeLessThan(3_000);
    await client.waitFor('the app side to be closed too', () => echo.connections[0]!.socket.destroyed);

    const line = await proxy.waitForError('connection timed out');
    expect(line.msg).toBe(
      `connection timed out (110: Connection timed out) while proxying connection, client: 127.0.0.1, ` +
        `server: 127.0.0.1:${proxy.port}, upstream: "${echo.address}", bytes from/to client:4/4, bytes from/to upstream:4/4`,
    );
    expect(line.level).toBe(30);
    const [session] = await proxy.waitForSessions(1);
    expect(session).toMatchObject({ status: 200, bytes_received: 4, bytes_sent: 4 });
    expect(session!.session_time).toBeGreaterThanOrEqual(0.9);
  });

  it('activity re-arms it: a session exchanging a byte every 300 ms outlives a 1 s timeout', async () => {
    const proxy = await startStreamProxy(tmp, [echo.address], { settings: 'timeout: 1s' });
    const client = await streamClient(proxy.port);
    for (let i = 0; i < 10; i++) {
      client.socket.write('.');
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    // Three seconds in, three times the timeout: still open, and every byte came back.
    expect(client.closed()).toBe(false);
    expect(client.received().toString()).toBe('.'.repeat(10));
    client.socket.end();
    await client.waitFor('the session to end', () => client.closed());
    const [session] = await proxy.waitForSessions(1);
    expect(session).toMatchObject({ status: 200, bytes_received: 10, bytes_sent: 10 });
    expect(proxy.process.errorLog().some((l) => String(l.msg).includes('timed out'))).toBe(false);
  });
});
