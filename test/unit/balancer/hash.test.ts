import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { buildRing, crc32, makeConsistentHash, makeHash } from '../../../src/balancer/hash.js';
import type { Balancer, BalanceContext } from '../../../src/balancer/types.js';
import { parseServerLine } from '../../../src/config/server-line.js';
import type { HeaderTemplate, ServerConfig } from '../../../src/config/types.js';
import { Peer } from '../../../src/upstream/peer.js';
import { server } from '../helpers.js';

const REQUEST_URI: HeaderTemplate = [{ variable: 'request_uri' }];
const all = (): boolean => true;
const usable = (peer: Peer): boolean => !peer.config.down;

/** A request whose $request_uri is `uri`. */
function request(uri: string): BalanceContext {
  return { clientAddress: '127.0.0.1', variable: (name) => (name === 'request_uri' ? uri : ''), state: {} };
}

/** The short name ("a") of the server `balancer` picks for each URI. */
function picks(balancer: Balancer, peers: readonly Peer[], uris: readonly string[], eligible = usable): string[] {
  return uris.map((uri) => balancer(peers, eligible, request(uri))?.name.replace(/^unix:\/(tmp\/ngx\/)?|\.sock$/g, '') ?? '-');
}

/** nginx's ((crc32([REHASH] KEY) >> 16) & 0x7fff), with zlib's crc32 as the reference. */
const nginxHashStep = (text: string): number => (zlib.crc32(text) >>> 16) & 0x7fff;

describe('crc32 (ngx_crc32)', () => {
  it('is the IEEE CRC-32 that zlib computes, and continues an earlier crc', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
    for (const text of ['/', '/index.html?a=1', 'x'.repeat(1000), '\0\xff\x80']) {
      expect(crc32(Buffer.from(text, 'latin1'))).toBe(zlib.crc32(Buffer.from(text, 'latin1')));
    }
    expect(crc32(Buffer.from('world'), crc32(Buffer.from('hello ')))).toBe(zlib.crc32('hello world'));
  });
});

// What nginx 1.22.1 answered for GET /0 … /15 through these upstream blocks (unix servers
// /tmp/ngx/{a,b,c}.sock; TCP servers 127.0.0.1:18001-18003 written as ta, tb, tc).
const URIS = Array.from({ length: 16 }, (_, i) => `/${i}`);
const nginxUnix = (down: boolean): Peer[] => [
  new Peer(server('tmp/ngx/a.sock')),
  new Peer(server('tmp/ngx/b.sock', { weight: 2, down })),
  new Peer(server('tmp/ngx/c.sock')),
];

describe('hash KEY (ngx_http_upstream_get_hash_peer)', () => {
  it('picks what nginx picks: "hash $request_uri", weights 1/2/1', () => {
    expect(picks(makeHash(REQUEST_URI), nginxUnix(false), URIS).join(' ')).toBe('a c b b b b c a c a a c b b b b');
  });

  it('rehashes past an unusable server as nginx does: the same block with b down', () => {
    expect(picks(makeHash(REQUEST_URI), nginxUnix(true), URIS).join(' ')).toBe('a c c c c c c a c a a c c a a c');
  });

  it('walks to sum % total_weight, adding crc32 of "<n>KEY" for the n-th rehash', () => {
    const peers = ['a', 'b', 'c'].map((name) => new Peer(server(name, { weight: name === 'b' ? 3 : 1 })));
    const byPoint = (point: number): string => ['a', 'b', 'b', 'b', 'c'][point]!;
    let rehashed = 0;
    for (const uri of URIS) {
      const first = nginxHashStep(uri);
      const second = first + nginxHashStep(`1${uri}`);
      const third = second + nginxHashStep(`2${uri}`);
      expect(picks(makeHash(REQUEST_URI), peers, [uri])).toEqual([byPoint(first % 5)]);
      // The servers of the earlier steps are unusable (already tried): the walk goes on.
      const tried = new Set([byPoint(first % 5)]);
      const expected = [second, third].map((sum) => byPoint(sum % 5)).find((name) => !tried.has(name));
      if (expected === undefined) continue;
      expect(picks(makeHash(REQUEST_URI), peers, [uri], (peer) => !tried.has(peer.name.slice(6)))).toEqual([expected]);
      rehashed++;
    }
    expect(rehashed).toBeGreaterThan(5);
  });

  it('a retry goes on along the walk from where the last attempt stopped (hp->hash, hp->rehash), past a server it skipped', () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const peers = names.map((name) => new Peer(server(name)));
    let checked = 0;
    for (let k = 0; k < 200 && checked < 5; k++) {
      const uri = `/retry/${k}`;
      // nginx's walk for this key, computed here.
      let sum = 0;
      const walk = Array.from({ length: 21 }, (_, n) => names[(sum += nginxHashStep(n === 0 ? uri : `${n}${uri}`)) % 5]!);
      const [first, second] = [...new Set(walk)];
      const afterSecond = walk.slice(walk.indexOf(second!) + 1).find((name) => name !== second);
      // Only keys where the answer differs from a walk restarted from the top.
      if (afterSecond === undefined || afterSecond === first) continue;
      const context = request(uri);
      const hash = makeHash(REQUEST_URI);
      const short = (peer: Peer | undefined): string | undefined => peer?.name.slice(6);
      // The first server of the walk is at max_conns: the attempt takes the next one.
      expect(short(hash(peers, (p) => short(p) !== first, context))).toBe(second);
      // The retry: second tried, first usable again; nginx's walk is past first.
      expect(short(hash(peers, (p) => short(p) !== second, context))).toBe(afterSecond);
      checked++;
    }
    expect(checked).toBe(5);
  });

  it('sends a key to one server every time, and spreads keys in proportion to weight', () => {
    const peers = [new Peer(server('a')), new Peer(server('b', { weight: 2 })), new Peer(server('c', { weight: 3 }))];
    const balancer = makeHash(REQUEST_URI);
    const uris = Array.from({ length: 10_000 }, (_, i) => `/item/${i}`);
    const first = picks(balancer, peers, uris);
    expect(picks(balancer, peers, uris)).toEqual(first);
    expectShares(first, { a: 1 / 6, b: 2 / 6, c: 3 / 6 });
  });

  it('falls back to round robin for an empty key', () => {
    const peers = ['a', 'b', 'c'].map((name) => new Peer(server(name)));
    expect(picks(makeHash(REQUEST_URI), peers, ['', '', '', ''])).toEqual(['a', 'b', 'c', 'a']);
  });

  it('falls back to round robin after 21 unusable servers', () => {
    const peers = ['a', 'b', 'c'].map((name) => new Peer(server(name)));
    let asked = 0;
    const none = (): boolean => (asked++, false);
    expect(makeHash(REQUEST_URI)(peers, none, request('/x'))).toBeUndefined();
    // 21 hash picks, then round robin asks once per server.
    expect(asked).toBe(21 + 3);
  });

  it('the key joins literal text (UTF-8, as written) and variable values (the bytes received)', () => {
    const peers = ['a', 'b', 'c', 'd', 'e'].map((name) => new Peer(server(name)));
    const key: HeaderTemplate = ['é-', { variable: 'http_x_key' }];
    const received = Buffer.from('ü', 'utf8').toString('latin1'); // how Node hands over the header's two bytes
    const context: BalanceContext = { clientAddress: '', variable: (name) => (name === 'http_x_key' ? received : ''), state: {} };
    const bytes = Buffer.concat([Buffer.from('é-', 'utf8'), Buffer.from('ü', 'utf8')]);
    const expected = peers[((zlib.crc32(bytes) >>> 16) & 0x7fff) % 5]!;
    expect(makeHash(key)(peers, all, context)).toBe(expected);
  });
});

describe('hash KEY consistent (ketama: ngx_http_upstream_get_chash_peer)', () => {
  it('picks what nginx picks: "hash $request_uri consistent", weights 1/2/1', () => {
    expect(picks(makeConsistentHash(REQUEST_URI), nginxUnix(false), URIS).join(' ')).toBe('c c c b a b a b a a b b a c b b');
  });

  it('moves only the keys of an unusable server, to the next point, as nginx does: b down', () => {
    expect(picks(makeConsistentHash(REQUEST_URI), nginxUnix(true), URIS).join(' ')).toBe('c c c a a c a a a a a c a c a c');
  });

  it('hashes a TCP server as "HOST\\0PORT", as nginx does: 127.0.0.1:18001-18003, weights 1/3/1', () => {
    const peers = [18001, 18002, 18003].map(
      (port) =>
        new Peer({
          ...server('x', { weight: port === 18002 ? 3 : 1 }),
          address: { kind: 'tcp', host: '127.0.0.1', port },
          written: `127.0.0.1:${port}`,
        }),
    );
    const names = URIS.map((uri) => makeConsistentHash(REQUEST_URI)(peers, all, request(uri))?.name);
    const short = names.map((name) => ({ '127.0.0.1:18001': 'ta', '127.0.0.1:18002': 'tb', '127.0.0.1:18003': 'tc' })[name!]);
    expect(short.join(' ')).toBe('tb tb tc ta tb tc tb ta ta tb tc tb tb tb tb tb');
  });

  it('puts 160 points per unit of weight on the ring, sorted, from crc32(HOST "\\0" PORT PREV)', () => {
    const ring = buildRing([new Peer(server('a')), new Peer(server('b', { weight: 2 }))]);
    expect(ring).toHaveLength(480);
    expect(ring.every((point, i) => i === 0 || ring[i - 1]!.hash < point.hash)).toBe(true);
    // The first point of unix:/a: the path, "\0", no port, then four zero bytes.
    const first = zlib.crc32(Buffer.from('/a\0\0\0\0\0', 'latin1'));
    expect(ring.find((point) => point.hash === first)?.server).toBe('unix:/a');
    // The second one hashes the first's value, little-endian.
    const previous = Buffer.alloc(4);
    previous.writeUInt32LE(first);
    const second = zlib.crc32(Buffer.concat([Buffer.from('/a\0', 'latin1'), previous]));
    expect(ring.find((point) => point.hash === second)?.server).toBe('unix:/a');
  });

  // ngx_http_upstream_init_chash hashes peer->server, the address as written in the server
  // line: HOST "\0" PORT, with PORT only if one was written (no default 80), and a unix:
  // server as its path. Each expected ring is built here from those bytes with zlib's crc32.
  it.each<[string, string]>([
    ['backend:8000', 'backend\x008000'],
    ['backend', 'backend\x00'],
    ['backend weight=2', 'backend\x00'],
    ['backend:80', 'backend\x0080'],
    ['127.0.0.1', '127.0.0.1\x00'],
    ['unix:/tmp/app.sock', '/tmp/app.sock\x00'],
    ['UNIX:/tmp/app.sock', '/tmp/app.sock\x00'],
    ['[::1]:8000', '[::1]\x008000'],
    ['[::1]', '[::1]\x00'],
  ])('server %s: the ring points are crc32(%j PREV)', (line, base) => {
    const config = parseServerLine(line) as ServerConfig;
    const expected: number[] = [];
    const previous = Buffer.alloc(4);
    for (let j = 0; j < config.weight * 160; j++) {
      const hash = zlib.crc32(Buffer.concat([Buffer.from(base, 'latin1'), previous]));
      expected.push(hash);
      previous.writeUInt32LE(hash);
    }
    expected.sort((x, y) => x - y);
    const ring = buildRing([new Peer(config)]);
    expect(ring.map((point) => point.hash)).toEqual(expected.filter((hash, i) => i === 0 || hash !== expected[i - 1]));
    expect(new Set(ring.map((point) => point.server))).toEqual(new Set([line.split(' ')[0]]));
  });

  it('a retry goes on from the point the last attempt took (hp->hash), past a point it skipped', () => {
    const peers = ['a', 'b', 'c', 'd', 'e'].map((name) => new Peer(server(name)));
    const ring = buildRing(peers);
    let checked = 0;
    for (let k = 0; k < 200 && checked < 5; k++) {
      const uri = `/retry/${k}`;
      const start = ring.findIndex((point) => point.hash >= zlib.crc32(uri));
      const along = Array.from({ length: 21 }, (_, i) => ring[((start < 0 ? 0 : start) + i) % ring.length]!.server);
      const [first, second] = [...new Set(along)];
      const afterSecond = along.slice(along.indexOf(second!)).find((name) => name !== second);
      if (afterSecond === undefined || afterSecond === first) continue;
      const context = request(uri);
      const hash = makeConsistentHash(REQUEST_URI);
      expect(hash(peers, (p) => p.name !== first, context)?.name).toBe(second);
      expect(hash(peers, (p) => p.name !== second, context)?.name).toBe(afterSecond);
      checked++;
    }
    expect(checked).toBe(5);
  });

  it('"backend" and "backend:80" are two servers on the ring, as in nginx, though they reach one address', () => {
    const peers = [new Peer(parseServerLine('backend') as ServerConfig), new Peer(parseServerLine('backend:80') as ServerConfig)];
    expect(peers[0]!.name).toBe(peers[1]!.name);
    const ring = buildRing(peers);
    expect(ring.filter((point) => point.server === 'backend')).toHaveLength(160);
    expect(ring.filter((point) => point.server === 'backend:80')).toHaveLength(160);
    // Each key goes to the server whose point it finds, not to both in turn.
    const balancer = makeConsistentHash(REQUEST_URI);
    for (const uri of URIS) {
      const hash = zlib.crc32(uri);
      const point = ring.find((p) => p.hash >= hash) ?? ring[0]!;
      const owner = peers.find((peer) => peer.config.written === point.server);
      expect([balancer(peers, all, request(uri)), balancer(peers, all, request(uri))]).toEqual([owner, owner]);
    }
  });

  it('sends a key to one server every time, and spreads keys roughly in proportion to weight', () => {
    const peers = [new Peer(server('a')), new Peer(server('b', { weight: 2 })), new Peer(server('c', { weight: 3 }))];
    const balancer = makeConsistentHash(REQUEST_URI);
    const uris = Array.from({ length: 10_000 }, (_, i) => `/item/${i}`);
    const first = picks(balancer, peers, uris);
    expect(picks(balancer, peers, uris)).toEqual(first);
    expectShares(first, { a: 1 / 6, b: 2 / 6, c: 3 / 6 });
  });

  it('removing one of 5 servers remaps about 1/5 of the keys; plain hash remaps most of them', () => {
    const five = ['a', 'b', 'c', 'd', 'e'].map((name) => new Peer(server(name)));
    const four = five.filter((peer) => peer.name !== 'unix:/c');
    const uris = Array.from({ length: 10_000 }, (_, i) => `/item/${i}`);
    const remapped = (balancer: Balancer): number => {
      const before = picks(balancer, five, uris);
      const after = picks(balancer, four, uris);
      return before.filter((name, i) => name !== after[i]).length / uris.length;
    };
    const consistent = remapped(makeConsistentHash(REQUEST_URI));
    expect(consistent).toBeGreaterThan(0.1);
    expect(consistent).toBeLessThan(0.3);
    expect(remapped(makeHash(REQUEST_URI))).toBeGreaterThan(0.5);
  });

  it('servers with one name share their points and take turns by weighted round robin', () => {
    const peers = [new Peer(server('a')), new Peer(server('a')), new Peer(server('b'))];
    const balancer = makeConsistentHash(REQUEST_URI);
    const uri = URIS.find((u) => balancer([peers[0]!, peers[2]!], all, request(u))?.name === 'unix:/a')!;
    const chosen = Array.from({ length: 4 }, () => balancer(peers, all, request(uri)));
    expect(chosen).toEqual([peers[0], peers[1], peers[0], peers[1]]);
  });

  it('falls back to round robin for an empty key, and after 21 points without a usable server', () => {
    const peers = ['a', 'b', 'c'].map((name) => new Peer(server(name)));
    expect(picks(makeConsistentHash(REQUEST_URI), peers, ['', '', '', ''])).toEqual(['a', 'b', 'c', 'a']);
    let asked = 0;
    const none = (): boolean => (asked++, false);
    expect(makeConsistentHash(REQUEST_URI)(peers, none, request('/x'))).toBeUndefined();
    // One server per point (its name matches), 21 points, then round robin asks once per server.
    expect(asked).toBe(21 + 3);
  });
});

/** Each server's share of `names` is within 15% of its expected share. */
function expectShares(names: readonly string[], expected: Record<string, number>): void {
  for (const [name, share] of Object.entries(expected)) {
    const actual = names.filter((n) => n === name).length / names.length;
    expect(actual, `share of ${name}`).toBeGreaterThan(share * 0.85);
    expect(actual, `share of ${name}`).toBeLessThan(share * 1.15);
  }
}
