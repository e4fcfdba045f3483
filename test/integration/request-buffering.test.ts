import { createHash } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { rawUpstream } from '../helpers/misbehaving-upstreams.js';
import { openFilesIn } from '../helpers/open-files.js';
import { chunk, LAST_CHUNK, rawConnect } from '../helpers/raw-http.js';
import { httpUpstream, readBody, type Respond, type TestUpstream } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

const MiB = 1024 * 1024;

/** Answers 200 with the length and sha256 of the body it read. */
const echoDigest: Respond = (req, res, seen) =>
  readBody(req, seen, () => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${seen.body.length} ${sha256(seen.body)}`);
  });

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A body whose every byte depends on its position, so a lost or repeated piece shows. */
function patterned(length: number): Buffer {
  const body = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) body.writeUInt32BE(i, i);
  return body;
}

/**
 * proxy_request_buffering (on by default): the whole body is read before a server is
 * chosen, in memory up to client_body_buffer_size and in an unlinked temp file beyond;
 * the upstream gets it with Content-Length, and a retry gets it again.
 */
describe('request buffering', () => {
  const fx = useProxyFixture();

  async function upstream(name: string, respond: Respond = echoDigest): Promise<TestUpstream> {
    return fx.track(await httpUpstream(fx.tmp.path(`${name}.sock`), respond));
  }

  it('a chunked body past client_body_buffer_size goes to an unlinked temp file and reaches the app with Content-Length', async () => {
    const app = await upstream('app');
    const proxy = await fx.start([app.address], `proxy:\n  temp_path: ${fx.tmp.dir}\n`);
    const body = patterned(MiB);

    const client = await rawConnect(proxy.port);
    client.socket.write('POST /upload HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n');
    client.socket.write(chunk(body.subarray(0, 512 * 1024)));
    // Half the body is in: it is held in a temp file that has no name, and the app has seen nothing.
    await until(() => openFilesIn(proxy.child.pid!, fx.tmp.dir).length === 1, 5_000, 'the proxy to open a temp file');
    const [open] = openFilesIn(proxy.child.pid!, fx.tmp.dir);
    expect(open).toMatch(/\/sockproxy-\d+-\d+ \(deleted\)$/);
    expect(readdirSync(fx.tmp.dir).filter((name) => name.startsWith('sockproxy-'))).toEqual([]);
    expect(app.requests).toEqual([]);

    client.socket.write(chunk(body.subarray(512 * 1024)));
    client.socket.write(LAST_CHUNK);
    const answer = await client.waitFor((text) => text.includes(sha256(body)), 10_000);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(app.requests).toHaveLength(1);
    expect(app.requests[0]!.headers['content-length']).toBe(String(MiB));
    expect(app.requests[0]!.headers['transfer-encoding']).toBeUndefined();
    expect(sha256(app.requests[0]!.body)).toBe(sha256(body));

    await proxy.waitForLog((l) => String(l.msg).startsWith(`a client request body is buffered to a temporary file ${fx.tmp.dir}/sockproxy-`));
    // The request is over: the file is gone with its descriptor.
    await until(() => openFilesIn(proxy.child.pid!, fx.tmp.dir).length === 0, 2_000, 'the temp file to be closed');
    client.socket.destroy();
  });

  it('a body within client_body_buffer_size stays in memory', async () => {
    const app = await upstream('app');
    const proxy = await fx.start([app.address], `proxy:\n  temp_path: ${fx.tmp.dir}\n  client_body_buffer_size: 16k\n`);
    const body = patterned(16 * 1024);
    const res = await request(`${proxy.url}/small`, { method: 'PUT', body });
    expect(await res.body.text()).toBe(`${body.length} ${sha256(body)}`);
    expect(proxy.errors().some((l) => String(l.msg).includes('temporary file'))).toBe(false);
  });

  it('a POST with non_idempotent is sent again, whole, to the next server after the first closed the connection', async () => {
    const closer = fx.track(await rawUpstream(fx.tmp.path('closer.sock'), (socket) => socket.destroy()));
    const app = await upstream('app');
    const proxy = await fx.start([closer.address, app.address], 'proxy:\n  next_upstream: error timeout non_idempotent\n  client_max_body_size: 8m\n');
    const body = patterned(4 * MiB);

    const res = await request(`${proxy.url}/orders`, { method: 'POST', body });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe(`${body.length} ${sha256(body)}`);
    // The first server read the whole request before it closed: the body was sent twice, whole.
    expect(closer.requests).toHaveLength(1);
    expect(sha256(closer.requests[0]!.body)).toBe(sha256(body));
    expect(app.requests).toHaveLength(1);
    expect(sha256(app.requests[0]!.body)).toBe(sha256(body));
  });

  it('request_buffering off streams the body, and a POST that started going out is not sent again', async () => {
    const closer = fx.track(await rawUpstream(fx.tmp.path('closer.sock'), (socket) => socket.destroy()));
    const app = await upstream('app');
    const proxy = await fx.start(
      [closer.address, app.address],
      'proxy:\n  request_buffering: off\n  next_upstream: error timeout non_idempotent\n',
    );

    const client = await rawConnect(proxy.port);
    client.socket.write('POST /orders HTTP/1.1\r\nHost: example.test\r\nContent-Length: 2000\r\n\r\n');
    client.socket.write(Buffer.alloc(1000, 'x'));
    // Streamed: the server has the request before the client finished sending it.
    await until(() => closer.requests.length === 1, 2_000, 'the first server to get the request head');
    client.socket.write(Buffer.alloc(1000, 'x'));
    const answer = await client.waitFor((text) => text.includes('\r\n\r\n'), 5_000);
    expect(answer).toMatch(/^HTTP\/1\.1 502 /);
    expect(app.requests).toEqual([]);
    client.socket.destroy();
  });

  it('client_body_timeout: a client that stops sending gets 408, and no server is contacted', async () => {
    const app = await upstream('app');
    const proxy = await fx.start([app.address], 'proxy:\n  client_body_timeout: 500ms\n');
    const client = await rawConnect(proxy.port);
    client.socket.write('POST /slow HTTP/1.1\r\nHost: example.test\r\nContent-Length: 100\r\n\r\n0123456789');
    const answer = await client.waitClosed(10_000);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    // Closed after the answer, and the answer says so.
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(app.requests).toEqual([]);
    await proxy.waitForLog((l) =>
      String(l.msg).startsWith('client timed out (110: Connection timed out) while reading client request body'),
    );
    const access = await proxy.waitForLog((l) => l.request_uri === '/slow' && 'status' in l);
    expect(access).toMatchObject({ status: 408, upstream_addr: '-' });
  });

  it('a temp file that cannot be created: 500, a [crit] line naming the file, and the proxy goes on', async () => {
    const app = await upstream('app');
    const tempDir = fx.tmp.path('gone');
    const proxy = await fx.start([app.address], `proxy:\n  temp_path: ${tempDir}\n`);
    rmSync(tempDir, { recursive: true, force: true });

    const res = await request(`${proxy.url}/big`, { method: 'POST', body: patterned(64 * 1024) });
    expect(res.statusCode).toBe(500);
    expect(await res.body.text()).toMatch(/^500 /);
    expect(app.requests).toEqual([]);
    const line = await proxy.waitForLog((l) => String(l.msg).startsWith(`open() "${tempDir}/sockproxy-`));
    expect(String(line.msg)).toMatch(/failed \(2: No such file or directory\) while reading client request body/);
    expect(line.nginx_level).toBe('crit');

    const small = await request(`${proxy.url}/small`, { method: 'POST', body: 'fits in memory' });
    expect(await small.body.text()).toBe(`14 ${sha256(Buffer.from('fits in memory'))}`);
  });
});
