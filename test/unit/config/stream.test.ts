import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { configErrorOf } from '../../helpers/config-error.js';
import type { StreamServerConfig } from '../../../src/config/types.js';

const SERVER = { weight: 1, maxFails: 1, failTimeoutSec: 10, maxConns: 0, backup: false, down: false };

const STREAM_ONLY = `stream:
  - listen: 9000
    upstream:
      servers: [unix:/tmp/echo.sock, unix:/tmp/echo2.sock backup]
`;

const HTTP = `listen: 8080
upstream:
  servers: [unix:/tmp/app.sock]
`;

const errorOf = (source: string): string => configErrorOf(source);

describe('the stream section', () => {
  it('a configuration with only stream servers has no HTTP proxy, and nginx stream defaults', () => {
    const config = parseConfig(STREAM_ONLY, 'echo.yaml');
    expect(config.http).toBeUndefined();
    expect(config.stream).toEqual([
      {
        listen: [{ kind: 'tcp', host: undefined, port: 9000 }],
        upstream: {
          name: 'backend',
          servers: [
            { ...SERVER, address: { kind: 'unix', path: '/tmp/echo.sock' }, written: 'unix:/tmp/echo.sock' },
            { ...SERVER, address: { kind: 'unix', path: '/tmp/echo2.sock' }, written: 'unix:/tmp/echo2.sock', backup: true },
          ],
          balance: { method: 'round_robin' },
        },
        connectTimeoutMs: 60_000,
        timeoutMs: 600_000,
        nextUpstream: true,
        nextUpstreamTries: 0,
        nextUpstreamTimeoutMs: 0,
      },
    ] satisfies StreamServerConfig[]);
    expect(Object.isFrozen(config.stream[0]!.upstream.servers[1])).toBe(true);
  });

  it('reads every setting, the issue\'s example included', () => {
    const config = parseConfig(
      `${HTTP}stream:
  - listen: [unix:/run/s.sock, "127.0.0.1:9001"]
    upstream:
      name: echo
      servers:
        - unix:/tmp/echo.sock max_fails=3 fail_timeout=30s
        - {address: "127.0.0.1:7000", weight: 2}
      balance: hash $remote_addr consistent
    connect_timeout: 2s
    timeout: 1m30s
    next_upstream: off
    next_upstream_tries: 2
    next_upstream_timeout: 5s
  - listen: 9002
    upstream: {servers: ["127.0.0.1:7001"], balance: least_conn}
    next_upstream: on
`,
      'x',
    );
    expect(config.http?.listen).toEqual([{ kind: 'tcp', host: undefined, port: 8080 }]);
    const [first, second] = config.stream;
    expect(first!.listen).toEqual([
      { kind: 'unix', path: '/run/s.sock' },
      { kind: 'tcp', host: '127.0.0.1', port: 9001 },
    ]);
    expect(first!.upstream.name).toBe('echo');
    expect(first!.upstream.servers.map((s) => [s.written, s.weight, s.maxFails, s.failTimeoutSec])).toEqual([
      ['unix:/tmp/echo.sock', 1, 3, 30],
      ['127.0.0.1:7000', 2, 1, 10],
    ]);
    expect(first!.upstream.balance).toEqual({ method: 'hash', key: [{ variable: 'remote_addr' }], consistent: true });
    expect(first).toMatchObject({
      connectTimeoutMs: 2_000,
      timeoutMs: 90_000,
      nextUpstream: false,
      nextUpstreamTries: 2,
      nextUpstreamTimeoutMs: 5_000,
    });
    expect(second!.upstream.balance).toEqual({ method: 'least_conn' });
    expect(second!.nextUpstream).toBe(true);
    // Keep-alive belongs to the HTTP upstream only.
    expect(first!.upstream).not.toHaveProperty('keepalive');
  });

  it('an HTTP-only configuration is unchanged and has no stream servers', () => {
    const config = parseConfig(HTTP, 'x');
    expect(config.stream).toEqual([]);
    expect(config.http?.upstream.keepalive).toBe(32);
  });

  it.each([
    ['an empty list', 'stream: []\n', 'bad.yaml:1:9: stream must list one or more servers (each with "listen" and "upstream"), got nothing'],
    ['nothing', 'stream:\n', 'bad.yaml:1:8: stream must list one or more servers (each with "listen" and "upstream"), got nothing'],
    ['a mapping', 'stream:\n  listen: 9000\n', 'bad.yaml:2:3: stream must be a list, got a mapping'],
    ['no listen', 'stream:\n  - upstream: {servers: [unix:/a]}\n', 'bad.yaml:2:5: missing required key "listen" in stream[0]'],
    ['no upstream', 'stream:\n  - listen: 9000\n', 'bad.yaml:2:5: missing required key "upstream" in stream[0]'],
    [
      'a misspelt key',
      'stream:\n  - listen: 9000\n    conect_timeout: 1s\n',
      'bad.yaml:3:5: unknown key "conect_timeout" in stream[0] (did you mean "connect_timeout"?)',
    ],
    [
      'a bad listen',
      'stream:\n  - listen: 99999\n    upstream: {servers: [unix:/a]}\n',
      'bad.yaml:2:13: invalid port in "99999" in stream[0].listen',
    ],
    [
      'a zero timeout',
      'stream:\n  - listen: 9000\n    upstream: {servers: [unix:/a]}\n    timeout: 0\n',
      'bad.yaml:4:14: stream[0].timeout must be a duration like 60s, 1m30s or 500ms (more than 0, at most 24d20h), got "0"',
    ],
    [
      'a connect_timeout in bad units',
      'stream:\n  - listen: 9000\n    upstream: {servers: [unix:/a]}\n    connect_timeout: 5 seconds\n',
      'bad.yaml:4:22: stream[0].connect_timeout must be a duration like 60s, 1m30s or 500ms (more than 0, at most 24d20h), got "5 seconds"',
    ],
    [
      'next_upstream not a flag',
      'stream:\n  - listen: 9000\n    upstream: {servers: [unix:/a]}\n    next_upstream: error timeout\n',
      'bad.yaml:4:20: stream[0].next_upstream must be on or off, got "error timeout"',
    ],
    [
      'negative next_upstream_tries',
      'stream:\n  - listen: 9000\n    upstream: {servers: [unix:/a]}\n    next_upstream_tries: -1\n',
      'bad.yaml:4:26: stream[0].next_upstream_tries must be a non-negative integer, got "-1"',
    ],
    [
      'a bad server line',
      'stream:\n  - listen: 9000\n    upstream: {servers: [unix:/a weight=0]}\n',
      'bad.yaml:3:26: invalid parameter "weight=0" in stream[0].upstream.servers[0]',
    ],
    [
      'an empty upstream',
      'stream:\n  - listen: 9000\n    upstream: {servers: []}\n',
      'bad.yaml:3:25: no servers are inside upstream in stream[0].upstream.servers',
    ],
    [
      'keepalive in a stream upstream',
      'stream:\n  - listen: 9000\n    upstream:\n      servers: [unix:/a]\n      keepalive: 8\n',
      'bad.yaml:5:7: "keepalive" is not available in a stream upstream (stream[0].upstream): a stream session is its own connection to the server',
    ],
    [
      'health_check in a stream upstream',
      'stream:\n  - listen: 9000\n    upstream:\n      servers: [unix:/a]\n      health_check: {uri: /}\n',
      'bad.yaml:5:7: "health_check" is not available in a stream upstream (stream[0].upstream): its checks are HTTP requests, which a stream server need not understand',
    ],
    [
      'queue in a stream upstream',
      'stream:\n  - listen: 9000\n    upstream:\n      servers: [unix:/a max_conns=1]\n      queue: {size: 5}\n',
      'bad.yaml:5:7: "queue" is not available in a stream upstream (stream[0].upstream): a stream session is not a request that can wait',
    ],
    [
      'ip_hash, which nginx\'s stream module lacks',
      'stream:\n  - listen: 9000\n    upstream: {servers: [unix:/a, unix:/b], balance: ip_hash}\n',
      'bad.yaml:3:54: "ip_hash" is not available in a stream upstream, use "hash $remote_addr" in stream[0].upstream.balance',
    ],
    [
      'an HTTP variable in a stream hash key',
      'stream:\n  - listen: 9000\n    upstream: {servers: [unix:/a, unix:/b], balance: hash $request_uri}\n',
      'bad.yaml:3:54: unknown "request_uri" variable in stream[0].upstream.balance (a stream session has $remote_addr, $remote_port, $server_addr, $server_port)',
    ],
    [
      'backup with hash',
      'stream:\n  - listen: 9000\n    upstream: {servers: [unix:/a, unix:/b backup], balance: hash $remote_addr}\n',
      'bad.yaml:3:35: balancing method does not support parameter "backup" in stream[0].upstream.servers[1] (balance is "hash $remote_addr")',
    ],
    [
      'the HTTP listen again',
      `${HTTP}stream:\n  - listen: "8080"\n    upstream: {servers: [unix:/a]}\n`,
      'bad.yaml:5:13: a duplicate listen "*:8080" in stream[0].listen (also in listen)',
    ],
    [
      'another stream server\'s listen again',
      'stream:\n  - listen: [9000, unix:/run/s.sock]\n    upstream: {servers: [unix:/a]}\n  - listen: unix:/run/s.sock\n    upstream: {servers: [unix:/b]}\n',
      'bad.yaml:4:13: a duplicate listen "unix:/run/s.sock" in stream[1].listen (also in stream[0].listen[1])',
    ],
    [
      'a listen repeated in one list',
      'stream:\n  - listen: [9000, "9000"]\n    upstream: {servers: [unix:/a]}\n',
      'bad.yaml:2:20: a duplicate listen "*:9000" in stream[0].listen[1]',
    ],
    [
      'an HTTP listen without its upstream, next to stream',
      `listen: 8080\n${STREAM_ONLY}`,
      'bad.yaml:1:1: missing required key "upstream"',
    ],
  ])('%s: exit-2 message with file:line:col', (_, source, message) => {
    expect(errorOf(source)).toBe(message);
  });
});
