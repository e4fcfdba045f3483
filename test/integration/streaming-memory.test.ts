import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppProcess, startApp } from '../helpers/app-process.js';
import { type ProxyProcess, startProxyProcess } from '../helpers/proxy-process.js';
import { mib, sampleRss } from '../helpers/rss.js';
import { makeTempDir } from '../helpers/temp.js';
import { httpUpstream, type TestUpstream } from '../helpers/upstreams.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const CHUNK = 64 * KiB;
/**
 * What a streaming proxy may grow by. Nothing is retained (the V8 heap stays near 10 MiB),
 * but every socket read is a new Buffer, and V8 lets tens of MiB of such garbage pile up
 * before its external-memory pressure triggers a collection; its young generation also grows
 * once the traffic starts. Measured on a 2-core box: upload 26–53 MiB, download 0–18 MiB.
 * A proxy that buffers a body, or ignores backpressure against a 64 MiB/s reader, grows by
 * hundreds of MiB.
 */
const MAX_RSS_GROWTH = 96 * MiB;

/** The sample app's /bytes/N body: 'abcdefghijklmnopqrstuvwxyz0123456789' repeated, from 'a'. */
const PATTERN = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789');
const PATTERN_BLOCK = Buffer.from(PATTERN.toString().repeat(Math.ceil(CHUNK / PATTERN.length) + 1));

function patternAt(offset: number, n: number): Buffer {
  const start = offset % PATTERN.length;
  return PATTERN_BLOCK.subarray(start, start + n);
}

function patternSha256(total: number): string {
  const hash = createHash('sha256');
  for (let offset = 0; offset < total; offset += CHUNK) hash.update(patternAt(offset, Math.min(CHUNK, total - offset)));
  return hash.digest('hex');
}

/**
 * An upload body of `total` bytes in 64 KiB chunks, made as they are pulled (never held
 * whole): each chunk starts with its index, so a lost, repeated or reordered chunk changes
 * the hash. `sha256()` is valid once the stream has ended.
 */
function uploadBody(total: number): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  let digest: string | undefined;
  async function* chunks(): AsyncGenerator<Buffer> {
    let index = 0;
    for (let offset = 0; offset < total; offset += CHUNK, index++) {
      const n = Math.min(CHUNK, total - offset);
      const chunk = Buffer.allocUnsafe(n);
      patternAt(offset, n).copy(chunk);
      if (n >= 8) chunk.writeBigUInt64BE(BigInt(index), 0);
      hash.update(chunk);
      yield chunk;
    }
    digest = hash.digest('hex');
  }
  return {
    stream: Readable.from(chunks(), { objectMode: false }),
    sha256: () => {
      if (digest === undefined) throw new Error('the upload body has not been fully read');
      return digest;
    },
  };
}

/** Sleeps as long as needed to keep `bytes` since `startedAt` at or under `bytesPerSecond`. */
async function throttle(bytes: number, startedAt: number, bytesPerSecond: number): Promise<void> {
  const ahead = (bytes / bytesPerSecond) * 1000 - (performance.now() - startedAt);
  if (ahead > 1) await new Promise((resolve) => setTimeout(resolve, ahead));
}

/** How fast the slow reader of the backpressure tests reads: well below what the proxy relays. */
const SLOW_RATE = 64 * MiB;
const SLOW_TOTAL = 256 * MiB;

/**
 * Bodies go through the proxy in both directions at a bounded memory cost: a 1 GiB upload
 * and a 1 GiB download cost the proxy a bounded amount of memory, not the body (proxy process
 * RSS, sampled from /proc every 100 ms; see MAX_RSS_GROWTH). With the default buffering
 * the part that does not fit in memory goes to a temp file; with buffering off, backpressure
 * holds back the other side. The upstream is the sample app (dist/app.js): /upload hashes what it
 * receives, /bytes/N generates N bytes honouring backpressure. Since the proxy is the slowest
 * part at full speed, full-speed transfers alone would not show a proxy that ignores
 * backpressure; the slow-reader tests do: an upstream (or client) that reads 64 MiB/s while
 * the proxy could relay faster must slow the other side down, not fill the proxy's memory.
 */
describe('streaming 1 GiB bodies through the proxy', () => {
  const tmp = makeTempDir();
  /** The server line for the config. */
  const appAddress = `unix:${tmp.path('app.sock')}`;
  let app: AppProcess;
  let slowApp: TestUpstream;
  /** Default settings: request and response buffering on (temp files past 16k and 64k). */
  let proxy: ProxyProcess;
  /** request_buffering and buffering off, in front of the app and of the slow upstream. */
  let streamingProxy: ProxyProcess;
  let slowProxy: ProxyProcess;

  beforeAll(async () => {
    app = await startApp(['--bind', appAddress]);
    // In-process upstream for the slow-upstream test: hashes what it gets, reading at SLOW_RATE.
    slowApp = await httpUpstream(tmp.path('slow.sock'), (req, res) => {
      const hash = createHash('sha256');
      const startedAt = performance.now();
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        req.pause();
        void throttle(bytes, startedAt, SLOW_RATE).then(() => req.resume());
      });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
      });
    });
    const settings = `proxy:\n  client_max_body_size: 2g\n  temp_path: ${tmp.dir}\nlog:\n  access: "off"\n`;
    const streaming = `proxy:\n  client_max_body_size: 2g\n  request_buffering: off\n  buffering: off\nlog:\n  access: "off"\n`;
    proxy = await startProxyProcess(`upstream:\n  servers:\n    - ${appAddress}\n${settings}`, tmp.dir);
    streamingProxy = await startProxyProcess(`upstream:\n  servers:\n    - ${appAddress}\n${streaming}`, tmp.dir);
    slowProxy = await startProxyProcess(`upstream:\n  servers:\n    - ${slowApp.address}\n${streaming}`, tmp.dir);
  });

  afterAll(async () => {
    await proxy?.stop();
    await streamingProxy?.stop();
    await slowProxy?.stop();
    await app?.stop('SIGKILL');
    await slowApp?.close();
    tmp.remove();
  });

  async function upload(
    total: number,
    through = proxy,
  ): Promise<{ status: number; result: { bytes: number; sha256: string }; sent: string }> {
    const body = uploadBody(total);
    const res = await request(`${through.url}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(total) },
      body: body.stream,
    });
    const text = await res.body.text();
    return { status: res.statusCode, result: JSON.parse(text) as { bytes: number; sha256: string }, sent: body.sha256() };
  }

  /** GET /bytes/N, hashed as it arrives; at most `bytesPerSecond` if given (a slow client). */
  async function download(
    total: number,
    bytesPerSecond?: number,
    through = proxy,
  ): Promise<{ status: number; length: string | undefined; bytes: number; sha256: string }> {
    const res = await request(`${through.url}/bytes/${total}`);
    const hash = createHash('sha256');
    const startedAt = performance.now();
    let bytes = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      hash.update(chunk);
      if (bytesPerSecond !== undefined) await throttle(bytes, startedAt, bytesPerSecond);
    }
    return { status: res.statusCode, length: res.headers['content-length'] as string | undefined, bytes, sha256: hash.digest('hex') };
  }

  it('uploads 1 GiB without the proxy holding it', { timeout: 90_000 }, async () => {
    // Warm up (JIT, connection pool, buffers) so the measurement shows the transfer itself.
    const warm = await upload(8 * MiB);
    expect(warm.status).toBe(200);
    expect(warm.result).toMatchObject({ bytes: 8 * MiB, sha256: warm.sent });

    const pid = proxy.child.pid!;
    const sampler = sampleRss(pid);
    const started = performance.now();
    const { status, result, sent } = await upload(GiB);
    const seconds = (performance.now() - started) / 1000;
    const rss = sampler.stop();
    console.log(
      `[measure] upload 1 GiB: rss before ${mib(rss.before)} MiB, peak ${mib(rss.peak)} MiB, ` +
        `growth ${mib(rss.growth)} MiB, ${(GiB / MiB / seconds).toFixed(0)} MiB/s (${seconds.toFixed(1)} s, ${rss.samples} samples)`,
    );
    expect(status).toBe(200);
    expect(result.bytes).toBe(GiB);
    expect(result.sha256).toBe(sent);
    expect(rss.samples).toBeGreaterThan(3);
    expect(rss.growth).toBeLessThan(MAX_RSS_GROWTH);
  });

  it('downloads 1 GiB without the proxy holding it', { timeout: 90_000 }, async () => {
    const warm = await download(8 * MiB);
    expect(warm).toMatchObject({ status: 200, bytes: 8 * MiB, sha256: patternSha256(8 * MiB) });

    const expected = patternSha256(GiB);
    const pid = proxy.child.pid!;
    const sampler = sampleRss(pid);
    const started = performance.now();
    const got = await download(GiB);
    const seconds = (performance.now() - started) / 1000;
    const rss = sampler.stop();
    console.log(
      `[measure] download 1 GiB: rss before ${mib(rss.before)} MiB, peak ${mib(rss.peak)} MiB, ` +
        `growth ${mib(rss.growth)} MiB, ${(GiB / MiB / seconds).toFixed(0)} MiB/s (${seconds.toFixed(1)} s, ${rss.samples} samples)`,
    );
    expect(got.status).toBe(200);
    expect(got.length).toBe(String(GiB));
    expect(got.bytes).toBe(GiB);
    expect(got.sha256).toBe(expected);
    expect(rss.samples).toBeGreaterThan(3);
    expect(rss.growth).toBeLessThan(MAX_RSS_GROWTH);
  });
  it('request_buffering off, upload to a slow upstream: the client is held back, the proxy does not buffer', { timeout: 60_000 }, async () => {
    const warm = await upload(8 * MiB, slowProxy);
    expect(warm.result).toMatchObject({ bytes: 8 * MiB, sha256: warm.sent });

    const sampler = sampleRss(slowProxy.child.pid!);
    const started = performance.now();
    const { status, result, sent } = await upload(SLOW_TOTAL, slowProxy);
    const seconds = (performance.now() - started) / 1000;
    const rss = sampler.stop();
    console.log(
      `[measure] upload 256 MiB to an upstream reading 64 MiB/s: rss before ${mib(rss.before)} MiB, ` +
        `peak ${mib(rss.peak)} MiB, growth ${mib(rss.growth)} MiB, ${(SLOW_TOTAL / MiB / seconds).toFixed(0)} MiB/s`,
    );
    expect(status).toBe(200);
    expect(result).toEqual({ bytes: SLOW_TOTAL, sha256: sent });
    expect(rss.growth).toBeLessThan(MAX_RSS_GROWTH);
  });

  it('buffering off, download to a slow client: the upstream is held back, the proxy does not buffer', { timeout: 60_000 }, async () => {
    const warm = await download(8 * MiB, SLOW_RATE, streamingProxy);
    expect(warm).toMatchObject({ status: 200, bytes: 8 * MiB });

    const expected = patternSha256(SLOW_TOTAL);
    const sampler = sampleRss(streamingProxy.child.pid!);
    const started = performance.now();
    const got = await download(SLOW_TOTAL, SLOW_RATE, streamingProxy);
    const seconds = (performance.now() - started) / 1000;
    const rss = sampler.stop();
    console.log(
      `[measure] download 256 MiB by a client reading 64 MiB/s: rss before ${mib(rss.before)} MiB, ` +
        `peak ${mib(rss.peak)} MiB, growth ${mib(rss.growth)} MiB, ${(SLOW_TOTAL / MiB / seconds).toFixed(0)} MiB/s`,
    );
    expect(got).toMatchObject({ status: 200, bytes: SLOW_TOTAL, sha256: expected });
    expect(rss.growth).toBeLessThan(MAX_RSS_GROWTH);
  });
});
