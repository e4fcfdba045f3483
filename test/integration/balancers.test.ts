import { writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { makeConsistentHash, makeHash } from '../../src/balancer/hash.js';
import type { Balancer } from '../../src/balancer/types.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { Peer } from '../../src/upstream/peer.js';
import { useProxyFixture } from '../helpers/fixture.js';
import { runProxy } from '../helpers/proxy-process.js';
import { httpUpstream, okFrom, type TestUpstream } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

/** `upstream.balance`: which server each request reaches, seen from the client and the upstreams. */
describe('balancing methods', () => {
  const fx = useProxyFixture();

  const get = async (path: string): Promise<string> => {
    const res = await request(`${fx.proxy!.url}${path}`);
    expect(res.statusCode).toBe(200);
    return res.body.text();
  };

  const threeUpstreams = async (): Promise<TestUpstream[]> => Promise.all(['a', 'b', 'c'].map((name) => fx.ok(name)));

  /** The server the pure balancer picks for `uri` among `upstreams`, as "ok <name>\n". */
  const expected = (balancer: Balancer, upstreams: readonly TestUpstream[], uri: string): string => {
    const peers = upstreams.map((u) => new Peer({ ...DEFAULTS.server, address: { kind: 'unix', path: u.path }, written: `unix:${u.path}` }));
    const peer = balancer(peers, () => true, { clientAddress: '127.0.0.1', variable: (name) => (name === 'request_uri' ? uri : ''), state: {} });
    return `ok ${['a', 'b', 'c'][peers.indexOf(peer!)]}\n`;
  };

  it.each([
    ['hash $request_uri', makeHash],
    ['hash $request_uri consistent', makeConsistentHash],
  ])('%s: one URI, one server, every time; different URIs, different servers', async (balance, make) => {
    const upstreams = await threeUpstreams();
    await fx.start(
      upstreams.map((u) => u.address),
      `  balance: ${balance}\n`,
    );
    const uris = Array.from({ length: 12 }, (_, i) => `/item/${i}?v=${i % 3}`);
    const answers = new Map<string, Set<string>>();
    for (let round = 0; round < 3; round++) {
      for (const uri of uris) {
        const text = await get(uri);
        answers.set(uri, (answers.get(uri) ?? new Set()).add(text));
      }
    }
    for (const [uri, texts] of answers) {
      expect(texts.size, uri).toBe(1);
      // The server the unit-tested balancer picks for $request_uri as the client sent it, query included.
      expect([...texts][0], uri).toBe(expected(make([{ variable: 'request_uri' }]), upstreams, uri));
    }
    expect(new Set([...answers.values()].map((texts) => [...texts][0])).size).toBeGreaterThan(1);
  });

  it('least_conn: while one server holds a slow request, the others take the rest', async () => {
    const held: ServerResponse[] = [];
    const upstreams = await Promise.all(
      ['a', 'b', 'c'].map(async (name) =>
        fx.track(
          await httpUpstream(fx.tmp.path(`${name}.sock`), (req, res, seen) => {
            if (req.url === '/slow') held.push(res);
            else okFrom(name)(req, res, seen);
          }),
        ),
      ),
    );
    await fx.start(
      upstreams.map((u) => u.address),
      '  balance: least_conn\n',
    );
    const slow = request(`${fx.proxy!.url}/slow`);
    await until(() => held.length === 1, 5_000, 'the slow request to reach an upstream');
    const busy = upstreams.findIndex((u) => u.requests.some((r) => r.url === '/slow'));
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await get(`/quick/${i}`));
    expect(upstreams[busy]!.requests.map((r) => r.url)).toEqual(['/slow']);
    // The two idle servers are tied (no connections): round robin between them.
    const idle = ['a', 'b', 'c'].filter((_, i) => i !== busy);
    expect(answers).toEqual([0, 1, 0, 1, 0, 1].map((i) => `ok ${idle[i]}\n`));
    held[0]!.end('slow done');
    const res = await slow;
    expect(await res.body.text()).toBe('slow done');
  });

  it('random two: every server serves', async () => {
    const upstreams = await threeUpstreams();
    await fx.start(
      upstreams.map((u) => u.address),
      '  balance: random two least_conn\n',
    );
    for (let i = 0; i < 60; i++) await get(`/r/${i}`);
    // Each server has 1/3 of the 60 requests on average; missing one entirely: p < 1e-9.
    expect(upstreams.map((u) => u.requests.length > 0)).toEqual([true, true, true]);
    expect(upstreams.reduce((sum, u) => sum + u.requests.length, 0)).toBe(60);
  });

  it('hash with a backup server: the configuration is refused (exit 2), in nginx\'s words', async () => {
    const file = fx.tmp.path('hash-backup.yaml');
    writeFileSync(
      file,
      'listen: 8080\nupstream:\n  balance: hash $request_uri consistent\n  servers:\n    - unix:/tmp/a.sock\n    - unix:/tmp/b.sock backup\n',
    );
    const result = await runProxy(['-t', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `sockproxy: [emerg] ${file}:6:7: balancing method does not support parameter "backup" in upstream.servers[1] ` +
        `(balance is "hash $request_uri consistent")\nsockproxy: configuration file ${file} test failed\n`,
    );
  });
});
