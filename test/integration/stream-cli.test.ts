import { existsSync, writeFileSync } from 'node:fs';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { probeSocket } from '../helpers/app-sockets.js';
import { stackLines, waitForRefused } from '../helpers/cli.js';
import { killAll } from '../helpers/node-process.js';
import { repoPath } from '../helpers/paths.js';
import { runProxy, startProxyWithConfig } from '../helpers/proxy-process.js';
import { echoUpstream, streamClient, type StreamUpstream } from '../helpers/stream.js';
import { freePort, makeTempDir, type TempDir } from '../helpers/temp.js';
import { httpUpstream, okFrom, type TestUpstream } from '../helpers/upstreams.js';

/** The `stream:` section from the command line: what starts, what is logged, what is refused, how it stops. */
describe('stream servers from the command line', () => {
  let tmp: TempDir;
  const closables: { close(): Promise<void> }[] = [];

  beforeEach(() => {
    tmp = makeTempDir();
  });

  afterEach(async () => {
    await killAll();
    await Promise.all(closables.splice(0).map((c) => c.close()));
    tmp.remove();
  });

  function writeConfig(text: string): string {
    const file = tmp.path('sockproxy.yaml');
    writeFileSync(file, text);
    return file;
  }

  async function echo(name: string): Promise<StreamUpstream> {
    const upstream = await echoUpstream(tmp.path(`${name}.sock`));
    closables.push(upstream);
    return upstream;
  }

  it('a configuration with only stream: no HTTP listener, one start line, and an access line with nginx\'s stream fields', async () => {
    const upstream = await echo('echo');
    const port = await freePort();
    const proxy = await startProxyWithConfig(
      writeConfig(`stream:\n  - listen: 127.0.0.1:${port}\n    upstream:\n      servers: [${upstream.address}]\n`),
    );
    const starts = proxy.errorLog().filter((l) => String(l.msg).includes('listening on'));
    expect(starts.map((l) => l.msg)).toEqual([
      expect.stringMatching(
        new RegExp(`^sockproxy \\S+ stream listening on 127\\.0\\.0\\.1:${port}, upstream "backend": ${upstream.address} weight=1`),
      ),
    ]);
    expect(starts[0]).toMatchObject({ stream: true, listen: [`127.0.0.1:${port}`], upstream: 'backend' });

    const client = await streamClient(port);
    client.socket.end('Hello, world!');
    await client.waitFor('the echo and the end', () => client.closed());
    expect(client.received().toString()).toBe('Hello, world!');

    const session = await proxy.waitForAccess((l) => 'session_time' in l);
    expect(session).toEqual({
      level: 30,
      time: expect.any(String),
      protocol: 'TCP',
      remote_addr: '127.0.0.1',
      server_addr: '127.0.0.1',
      server_port: port,
      status: 200,
      bytes_sent: 13,
      bytes_received: 13,
      session_time: expect.any(Number),
      upstream_addr: upstream.address,
      upstream_bytes_sent: '13',
      upstream_bytes_received: '13',
      upstream_connect_time: expect.stringMatching(/^\d+\.\d{3}$/),
    });
  });

  it('HTTP and stream in one process, each with its own upstream', async () => {
    const app: TestUpstream = await httpUpstream(tmp.path('app.sock'), okFrom('app'));
    closables.push(app);
    const upstream = await echo('echo');
    const [httpPort, streamPort] = [await freePort(), await freePort()];
    const proxy = await startProxyWithConfig(
      writeConfig(
        `listen: 127.0.0.1:${httpPort}\nupstream:\n  servers: [${app.address}]\n` +
          `stream:\n  - listen: 127.0.0.1:${streamPort}\n    upstream:\n      name: echo\n      servers: [${upstream.address}]\n`,
      ),
    );
    const res = await request(`http://127.0.0.1:${httpPort}/x`);
    expect(await res.body.text()).toBe('ok app\n');
    const client = await streamClient(streamPort);
    client.socket.end('raw bytes');
    await client.waitFor('the echo', () => client.closed());
    expect(client.received().toString()).toBe('raw bytes');
    expect(proxy.errorLog().filter((l) => String(l.msg).includes('listening on')).map((l) => l.stream ?? false)).toEqual([
      false,
      true,
    ]);
  });

  it('SIGTERM: the listener stops at once, an open session runs to its end, then the proxy exits 0 and removes its socket file', async () => {
    const upstream = await echo('echo');
    const listen = tmp.path('stream.sock');
    const port = await freePort();
    const proxy = await startProxyWithConfig(
      writeConfig(
        `stream:\n  - listen: [unix:${listen}, "127.0.0.1:${port}"]\n    upstream:\n      servers: [${upstream.address}]\n`,
      ),
    );
    const client = await streamClient(listen);
    client.socket.write('before');
    await client.waitFor('the first echo', () => client.received().toString() === 'before');

    proxy.child.kill('SIGTERM');
    await waitForRefused(port);
    expect(existsSync(listen)).toBe(false);
    // The session still works, and the proxy waits for it.
    client.socket.write(' after');
    await client.waitFor('the second echo', () => client.received().toString() === 'before after');
    expect(proxy.alive()).toBe(true);
    client.socket.end();
    expect((await proxy.waitForExit(5_000)).code).toBe(0);
    // (waitForRefused's probes may have had sessions of their own before the listener closed.)
    const session = proxy.accessLog().find((l) => l.remote_addr === 'unix:');
    expect(session).toMatchObject({ status: 200, server_addr: 'unix:', bytes_received: 12, bytes_sent: 12 });
    expect(await probeSocket(listen)).toBe('ENOENT');
  });

  it.each([
    [
      'keepalive in a stream upstream',
      'stream:\n  - listen: 9000\n    upstream:\n      servers: [unix:/tmp/echo.sock]\n      keepalive: 16\n',
      '5:7',
      '"keepalive" is not available in a stream upstream (stream[0].upstream): a stream session is its own connection to the server',
    ],
    [
      'a misspelt stream key',
      'stream:\n  - listen: 9000\n    upstream:\n      servers: [unix:/tmp/echo.sock]\n    timout: 10m\n',
      '5:5',
      'unknown key "timout" in stream[0] (did you mean "timeout"?)',
    ],
    [
      'a stream server without upstream',
      'stream:\n  - listen: 9000\n',
      '2:5',
      'missing required key "upstream" in stream[0]',
    ],
  ])('a bad stream section (%s): exit 2, file:line:col and the value, no stack trace', async (_, yaml, where, text) => {
    const file = writeConfig(yaml);
    for (const args of [['-t', '-c', file], ['-c', file]]) {
      const result = await runProxy(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`sockproxy: [emerg] ${file}:${where}: ${text}\n`);
      expect(stackLines(result.stderr)).toEqual([]);
    }
  });

  it('config/echo-stream.yaml, the demo\'s configuration, passes -t', async () => {
    const file = repoPath('config/echo-stream.yaml');
    const result = await runProxy(['-t', '-c', file]);
    expect(result.stderr).toContain('test is successful');
    expect(result.code).toBe(0);
  });
});
