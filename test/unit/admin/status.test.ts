import { describe, expect, it } from 'vitest';
import { combineStatus, type ProcessStatus, type ServerStatus } from '../../../src/admin/status.js';

const ZERO_CLASSES = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
const ZERO_FAILURES = { error: 0, timeout: 0, invalid_header: 0, http_5xx: 0, http_429: 0, no_live: 0 };

function server(overrides: Partial<ServerStatus>): ServerStatus {
  return {
    address: 'unix:/run/a.sock',
    backup: false,
    weight: 1,
    state: 'up',
    unavailable_until: null,
    fails: 0,
    active: 0,
    requests: 0,
    failures: 0,
    connections: { idle: 0, active: 0 },
    last_error: null,
    ...overrides,
  };
}

/** A stream server's shape: no keep-alive connections. */
function withoutConnections({ connections: _, ...rest }: ServerStatus): ServerStatus {
  return rest;
}

function part(pid: number, servers: ServerStatus[], responses = ZERO_CLASSES): ProcessStatus {
  return {
    pid,
    started_at: '2026-01-01T00:00:00.000Z',
    config: { file: 'p.yaml', loaded_at: '2026-01-01T00:00:00.000Z' },
    client_connections: 2,
    tunnels: 1,
    responses,
    sessions: ZERO_CLASSES,
    upstream_failures: { ...ZERO_FAILURES, error: pid === 1 ? 1 : 0 },
    reloads: { ok: 0, failed: 0 },
    upstreams: [{ name: 'backend', kind: 'http', servers }],
  };
}

const PRIMARY = {
  version: '0.1.0',
  pid: 9,
  startedAt: new Date('2026-01-01T00:00:00Z'),
  config: { file: 'p.yaml', loadedAt: new Date('2026-01-01T00:00:00Z') },
};

describe('combineStatus: the workers\' parts as one document', () => {
  it('sums the counts, keeps the most serious state, the latest unavailable_until and last error', () => {
    const early = { time: '2026-01-01T00:00:01.000Z', kind: 'error' as const, message: 'connect() failed' };
    const late = { time: '2026-01-01T00:00:02.000Z', kind: 'timeout' as const, message: 'upstream timed out' };
    const document = combineStatus(
      PRIMARY,
      [
        part(1, [server({ requests: 5, failures: 1, fails: 1, active: 1, connections: { idle: 2, active: 1 }, last_error: late })], {
          ...ZERO_CLASSES,
          '2xx': 4,
          '5xx': 1,
        }),
        part(2, [server({ state: 'unavailable', unavailable_until: '2026-01-01T00:00:12.000Z', requests: 3, failures: 2, fails: 2, last_error: early })], {
          ...ZERO_CLASSES,
          '2xx': 3,
        }),
      ],
      [3],
    );
    expect(document.upstreams).toEqual([
      {
        name: 'backend',
        kind: 'http',
        servers: [
          server({
            state: 'unavailable',
            unavailable_until: '2026-01-01T00:00:12.000Z',
            requests: 8,
            failures: 3,
            fails: 3,
            active: 1,
            connections: { idle: 2, active: 1 },
            last_error: late,
          }),
        ],
      },
    ]);
    expect(document.totals).toEqual({
      requests: 8,
      responses: { ...ZERO_CLASSES, '2xx': 7, '5xx': 1 },
      sessions: ZERO_CLASSES,
      upstream_failures: { ...ZERO_FAILURES, error: 1 },
      client_connections: 4,
      tunnels: 2,
      reloads: { ok: 0, failed: 0 },
    });
    expect(document.workers.map((w) => [w.pid, w.requests])).toEqual([
      [1, 5],
      [2, 3],
    ]);
    expect(document.workers_not_answering).toEqual([3]);
    expect(document.pid).toBe(9);
  });

  it('a stream server is summed apart from an HTTP upstream of the same name: sessions, bytes, failures', () => {
    const stream = (requests: number, sent: number, received: number, sessions: number): ProcessStatus => ({
      ...part(requests, [server({ requests: 1 })]),
      sessions: { ...ZERO_CLASSES, '2xx': sessions },
      upstreams: [
        { name: 'backend', kind: 'http', servers: [server({ requests: 1 })] },
        {
          name: 'backend',
          kind: 'stream',
          servers: [withoutConnections(server({ requests, failures: 1, sent, received }))],
        },
      ],
    });
    const document = combineStatus(PRIMARY, [stream(2, 10, 20, 1), stream(3, 5, 7, 2)], []);
    expect(document.upstreams.map((u) => [u.kind, u.servers.map((s) => [s.requests, s.failures, s.sent, s.received])])).toEqual([
      ['http', [[2, 0, undefined, undefined]]],
      ['stream', [[5, 2, 15, 27]]],
    ]);
    expect(document.totals.sessions).toEqual({ ...ZERO_CLASSES, '2xx': 3 });
    expect(document.totals.requests).toBe(0);
  });

  it('the primary\'s reload count stands for all: the workers reload what it checked', () => {
    const document = combineStatus({ ...PRIMARY, reloads: { ok: 2, failed: 1 } }, [part(1, []), part(2, [])], []);
    expect(document.totals.reloads).toEqual({ ok: 2, failed: 1 });
  });
});
