import type { HeaderTemplate } from '../config/types.js';
import type { Peer } from '../upstream/peer.js';
import { pickSmoothWeighted } from './round-robin.js';
import type { BalanceContext, Balancer } from './types.js';
import { peerAtWeight } from './weights.js';

/**
 * Both hash methods give up after 20 unusable picks and fall back to round robin
 * (`++hp->tries > 20` in ngx_http_upstream_get_hash_peer, `hp->tries > 20` in
 * ngx_http_upstream_get_chash_peer): at most 21 servers are looked at.
 */
const MAX_HASH_TRIES = 20;

/** ngx_http_upstream_update_chash: points on the ring per unit of weight. */
const POINTS_PER_WEIGHT = 160;

/**
 * nginx `hash KEY` (ngx_http_upstream_get_hash_peer), compatible with Cache::Memcached:
 * the n-th pick adds ((crc32(n KEY) >> 16) & 0x7fff) to a running sum, n written in decimal
 * and left out the first time, and walks the weighted server list to sum % total_weight.
 * An unusable server (tried, down, failed, at max_conns) means the next n. An empty key,
 * or 21 unusable picks, fall back to round robin. The sum, n and the misses belong to the
 * request: a retry goes on from them, and once fallen back it stays on round robin.
 */
export function makeHash(key: HeaderTemplate): Balancer {
  return (candidates, eligible, context) => {
    const { state } = context;
    const bytes = keyBytes(key, context);
    let misses = state.misses ?? 0;
    if (bytes.length === 0 || misses > MAX_HASH_TRIES) return pickSmoothWeighted(candidates, eligible);
    let sum = state.position ?? 0;
    let picks = state.picks ?? 0;
    for (;;) {
      const crc = picks === 0 ? crc32(bytes) : crc32(bytes, crc32(Buffer.from(String(picks), 'latin1')));
      // hp->hash is a uint32_t.
      sum = (sum + ((crc >>> 16) & 0x7fff)) >>> 0;
      picks++;
      const peer = peerAtWeight(candidates, sum);
      const found = eligible(peer);
      if (!found) misses++;
      if (found || misses > MAX_HASH_TRIES) {
        Object.assign(state, { position: sum, picks, misses });
        return found ? peer : pickSmoothWeighted(candidates, eligible);
      }
    }
  };
}

/**
 * nginx `hash KEY consistent`, ketama (ngx_http_upstream_get_chash_peer): crc32(KEY) finds
 * the first point on the ring at or after it (wrapping to the first point); the server of
 * that point takes the request, or, if it is unusable, the server of the next point, for
 * up to 21 points, then round robin. An empty key falls back to round robin at once.
 * Servers written alike share their points and take turns by smooth weighted round
 * robin, as nginx does for the addresses of one `server` line. Removing a server moves
 * only the keys that were on it. The point and the misses belong to the request (hp->hash,
 * hp->tries): a retry goes on from the point the last attempt took.
 */
export function makeConsistentHash(key: HeaderTemplate): Balancer {
  // Built once per server list (the group passes the same frozen array every time).
  const rings = new WeakMap<readonly Peer[], readonly RingPoint[]>();
  return (candidates, eligible, context) => {
    const { state } = context;
    const bytes = keyBytes(key, context);
    let misses = state.misses ?? 0;
    if (bytes.length === 0 || misses > MAX_HASH_TRIES) return pickSmoothWeighted(candidates, eligible);
    let ring = rings.get(candidates);
    if (ring === undefined) {
      ring = buildRing(candidates);
      rings.set(candidates, ring);
    }
    let point = state.position ?? findPoint(ring, crc32(bytes));
    for (;;) {
      const { server } = ring[point % ring.length]!;
      const peer = pickSmoothWeighted(candidates, (candidate) => candidate.config.written === server && eligible(candidate));
      if (peer === undefined) {
        point++;
        misses++;
      }
      if (peer !== undefined || misses > MAX_HASH_TRIES) {
        Object.assign(state, { position: point, misses });
        return peer ?? pickSmoothWeighted(candidates, eligible);
      }
    }
  };
}

export interface RingPoint {
  /** crc32, unsigned. */
  readonly hash: number;
  /** The server the point belongs to, as written in the configuration (ServerConfig.written). */
  readonly server: string;
}

/**
 * ngx_http_upstream_init_chash (ngx_http_upstream_update_chash in later nginx), compatible
 * with Cache::Memcached::Fast: weight × 160 points per server, point j = crc32(HOST "\0"
 * PORT PREV), PREV the previous point's hash as 4 little-endian bytes (0 for the first).
 * Sorted by hash; of equal hashes only the first is kept.
 *
 * HOST and PORT come from the address as written in the `server` line (peer->server, the
 * text ngx_http_upstream_server keeps), not from the resolved address: a final ":digits"
 * is the port, anything else is all host with an empty port, and a unix: server is its
 * path with no port. So `backend` hashes "backend\0" (no default port 80), `backend:80`
 * "backend\080", `[::1]:8000` "[::1]\08000", `unix:/tmp/a.sock` "/tmp/a.sock\0".
 */
export function buildRing(candidates: readonly Peer[]): readonly RingPoint[] {
  const points: RingPoint[] = [];
  for (const peer of candidates) {
    const { written } = peer.config;
    const { host, port } = splitServerName(written);
    // Server names come from the configuration file, which nginx reads as UTF-8 bytes.
    const base = crc32(Buffer.from(port, 'utf8'), crc32(Buffer.from(`${host}\0`, 'utf8')));
    const previous = Buffer.alloc(4);
    for (let j = 0; j < peer.config.weight * POINTS_PER_WEIGHT; j++) {
      const hash = crc32(previous, base);
      points.push({ hash, server: written });
      previous.writeUInt32LE(hash);
    }
  }
  points.sort((a, b) => a.hash - b.hash);
  return points.filter((point, index) => index === 0 || point.hash !== points[index - 1]!.hash);
}

/** A `server` address as written, split as ngx_http_upstream_init_chash splits peer->server. */
function splitServerName(name: string): { host: string; port: string } {
  if (name.slice(0, 5).toLowerCase() === 'unix:') return { host: name.slice(5), port: '' };
  const match = /^(.*):([0-9]*)$/s.exec(name);
  return match === null ? { host: name, port: '' } : { host: match[1]!, port: match[2]! };
}

/** ngx_http_upstream_find_chash_point: the index of the first point >= hash (ring.length past the last). */
function findPoint(ring: readonly RingPoint[], hash: number): number {
  let low = 0;
  let high = ring.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const point = ring[middle]!.hash;
    if (hash > point) low = middle + 1;
    else if (hash < point) high = middle;
    else return middle;
  }
  return low;
}

/**
 * The key's bytes as nginx hashes them: literal text as written in the configuration
 * (UTF-8), variable values as the bytes the client sent, which Node hands over decoded
 * as latin1 (one character per byte).
 */
function keyBytes(key: HeaderTemplate, context: BalanceContext): Buffer {
  return Buffer.concat(
    key.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : Buffer.from(context.variable(part.variable), 'latin1'))),
  );
}

const CRC32_TABLE = Uint32Array.from({ length: 256 }, (_, byte) => {
  let crc = byte;
  for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  return crc;
});

/**
 * CRC-32 (IEEE 802.3, reflected, as ngx_crc32 and zlib compute it), unsigned; `previous`
 * continues an earlier crc, so crc32(b, crc32(a)) = crc32(a + b), as ngx_crc32_update
 * does. zlib.crc32 does the same but only from Node 20.15, and sockproxy supports 20.10.
 */
export function crc32(bytes: Uint8Array, previous = 0): number {
  let crc = ~previous;
  for (const byte of bytes) crc = CRC32_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
