import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/errors.js';
import { loadConfig, parseConfig } from '../../../src/config/load.js';
import { configErrorOf } from '../../helpers/config-error.js';
import type { Balance, Config } from '../../../src/config/types.js';

const SERVER = { weight: 1, maxFails: 1, failTimeoutSec: 10, maxConns: 0, backup: false, down: false };

const FULL_EXAMPLE = `listen: 8080                    # "8080" | "127.0.0.1:8080" | "[::1]:8080" | "unix:/run/sockproxy.sock"; or a list
upstream:
  name: app_server              # optional, default "backend"
  servers:                      # one or more nginx \`server\` lines (string) or mappings
    - unix:/tmp/gunicorn.sock fail_timeout=0
    - 127.0.0.1:8000 weight=2 max_fails=3 fail_timeout=30s
    - 127.0.0.1:8001 backup
  balance: round_robin          # round_robin (default) | least_conn | ip_hash | random
  keepalive: 32                 # idle connections kept per server; 0 = a new connection per request
proxy:                          # all optional: nginx's proxy_* directives without the prefix, same defaults
  next_upstream: error timeout  # proxy_next_upstream tokens, a string or a YAML list
  next_upstream_tries: 0        # 0 = unlimited
  next_upstream_timeout: 0      # 0 = unlimited
  connect_timeout: 60s
  send_timeout: 60s
  read_timeout: 60s
  client_max_body_size: 1m      # 0 = unlimited
  set_header:                   # proxy_set_header: values may use $variables; "" removes the header
    X-Real-IP: $remote_addr
log:
  level: info                   # trace debug info warn error fatal
  access: stdout                # stdout | stderr | off | a file path
`;

const MINIMAL = `listen: 8080
upstream:
  servers:
    - unix:/tmp/app.sock
`;

const errorOf = (source: string): string => configErrorOf(source);

describe('parseConfig', () => {
  it('resolves the documented example', () => {
    const config = parseConfig(FULL_EXAMPLE, 'sockproxy.yaml');
    expect(config).toEqual({
      file: 'sockproxy.yaml',
      workers: 1,
      admin: undefined,
      http: {
        listen: [{ kind: 'tcp', host: undefined, port: 8080 }],
        upstream: {
          name: 'app_server',
          servers: [
            { ...SERVER, address: { kind: 'unix', path: '/tmp/gunicorn.sock' }, written: 'unix:/tmp/gunicorn.sock', failTimeoutSec: 0 },
            { ...SERVER, address: { kind: 'tcp', host: '127.0.0.1', port: 8000 }, written: '127.0.0.1:8000', weight: 2, maxFails: 3, failTimeoutSec: 30 },
            { ...SERVER, address: { kind: 'tcp', host: '127.0.0.1', port: 8001 }, written: '127.0.0.1:8001', backup: true },
          ],
          balance: { method: 'round_robin' },
          keepalive: 32,
          keepaliveTimeoutMs: 1_500,
          keepaliveRequests: 1000,
        },
      },
      proxy: {
        nextUpstream: new Set(['error', 'timeout']),
        nextUpstreamTries: 0,
        nextUpstreamTimeoutMs: 0,
        connectTimeoutMs: 60_000,
        sendTimeoutMs: 60_000,
        readTimeoutMs: 60_000,
        clientMaxBodySizeBytes: 1_048_576,
        bufferSizeBytes: 8192,
        setHeader: [{ name: 'x-real-ip', template: [{ variable: 'remote_addr' }] }],
        clientBodyTimeoutMs: 60_000,
        requestBuffering: true,
        clientBodyBufferSizeBytes: 16_384,
        buffering: true,
        buffersBytes: 65_536,
        maxTempFileSizeBytes: 1_073_741_824,
        tempPath: tmpdir(),
        maxUpgraded: 1024,
      },
      client: {
        headerTimeoutMs: 60_000,
        keepaliveTimeoutMs: 75_000,
        keepaliveRequests: 1000,
        headerBuffers: { number: 4, sizeBytes: 8192 },
        maxConnections: 1024,
      },
      stream: [],
      log: { level: 'info', access: { kind: 'stdout' } },
      shutdownTimeoutMs: 10_000,
      pid: { kind: 'default' },
    } satisfies Config);
  });

  it('fills every default', () => {
    const config = parseConfig(MINIMAL, 'min.yaml');
    expect(config.http!.upstream).toEqual({
      name: 'backend',
      servers: [{ ...SERVER, address: { kind: 'unix', path: '/tmp/app.sock' }, written: 'unix:/tmp/app.sock' }],
      balance: { method: 'round_robin' },
      keepalive: 32,
      keepaliveTimeoutMs: 1_500,
      keepaliveRequests: 1000,
    });
    expect(config.proxy).toEqual(parseConfig(FULL_EXAMPLE.replace(/  set_header:.*\n.*\n/, ''), 'x').proxy);
    expect(config.proxy.setHeader).toEqual([]);
    expect(config.log).toEqual({ level: 'info', access: { kind: 'stdout' } });
  });

  it('freezes the result all the way down', () => {
    const config = parseConfig(FULL_EXAMPLE, 'sockproxy.yaml');
    const objects: unknown[] = [
      config,
      config.http!.listen,
      config.http!.listen[0],
      config.http!.upstream,
      config.http!.upstream.servers,
      config.http!.upstream.servers[0],
      config.http!.upstream.servers[0]!.address,
      config.proxy,
      config.proxy.setHeader,
      config.proxy.setHeader[0],
      config.proxy.setHeader[0]!.template,
      config.log,
      config.log.access,
    ];
    for (const object of objects) expect(Object.isFrozen(object)).toBe(true);
  });

  it('reads every form of listen', () => {
    const config = parseConfig(
      `listen:\n  - 8080\n  - "127.0.0.1:8081"\n  - "[::1]:8082"\n  - unix:/run/sockproxy.sock\nupstream:\n  servers: [unix:/a]\n`,
      'x',
    );
    expect(config.http!.listen).toEqual([
      { kind: 'tcp', host: undefined, port: 8080 },
      { kind: 'tcp', host: '127.0.0.1', port: 8081 },
      { kind: 'tcp', host: '::1', port: 8082 },
      { kind: 'unix', path: '/run/sockproxy.sock' },
    ]);
    expect(parseConfig(`listen: unix:/run/p.sock\nupstream: {servers: [unix:/a]}\n`, 'x').http!.listen).toEqual([
      { kind: 'unix', path: '/run/p.sock' },
    ]);
  });

  it('reads a server written as a mapping', () => {
    const config = parseConfig(
      `listen: 8080
upstream:
  servers:
    - {address: unix:/tmp/a.sock, weight: 2, max_fails: 3, fail_timeout: 30s, max_conns: 0, backup: true, down: false}
    - address: 127.0.0.1:8000
      fail_timeout: 0
      max_conns: "5"
`,
      'x',
    );
    expect(config.http!.upstream.servers).toEqual([
      { ...SERVER, address: { kind: 'unix', path: '/tmp/a.sock' }, written: 'unix:/tmp/a.sock', weight: 2, maxFails: 3, failTimeoutSec: 30, backup: true },
      { ...SERVER, address: { kind: 'tcp', host: '127.0.0.1', port: 8000 }, written: '127.0.0.1:8000', failTimeoutSec: 0, maxConns: 5 },
    ]);
  });

  it('allows two servers with the same address, as nginx does', () => {
    const config = parseConfig(`listen: 8080\nupstream:\n  servers: [unix:/a, unix:/a]\n`, 'x');
    expect(config.http!.upstream.servers).toHaveLength(2);
  });

  it.each<[string, string[]]>([
    ['error timeout', ['error', 'timeout']],
    ['ERROR Http_502', ['error', 'http_502']],
    ['[error, timeout, http_503, non_idempotent]', ['error', 'timeout', 'http_503', 'non_idempotent']],
    ['error error', ['error']],
    ['off', []],
    // nginx: any `off` means only off
    ['error off http_502', []],
    ['[timeout, "off"]', []],
  ])('next_upstream %s', (value, tokens) => {
    const config = parseConfig(`${MINIMAL}proxy:\n  next_upstream: ${value}\n`, 'x');
    expect([...config.proxy.nextUpstream].sort()).toEqual([...tokens].sort());
  });

  it('reads durations, sizes and numbers written as YAML numbers or strings', () => {
    const config = parseConfig(
      `${MINIMAL}proxy:
  next_upstream_tries: 3
  next_upstream_timeout: 1m30s
  connect_timeout: 5
  send_timeout: 500ms
  read_timeout: "1h"
  client_max_body_size: 4G
`,
      'x',
    );
    expect(config.proxy).toMatchObject({
      nextUpstreamTries: 3,
      nextUpstreamTimeoutMs: 90_000,
      connectTimeoutMs: 5_000,
      sendTimeoutMs: 500,
      readTimeoutMs: 3_600_000,
      clientMaxBodySizeBytes: 4 * 1024 ** 3,
    });
    expect(parseConfig(`${MINIMAL}proxy:\n  client_max_body_size: 1024\n`, 'x').proxy.clientMaxBodySizeBytes).toBe(1024);
  });

  it('reads the buffering settings as nginx writes them', () => {
    const config = parseConfig(
      `${MINIMAL}proxy:
  request_buffering: off
  client_body_buffer_size: 128k
  client_body_timeout: 10s
  buffering: on
  buffers: 8 16k
  max_temp_file_size: 0
  temp_path: /var/tmp/sockproxy
`,
      'x',
    );
    expect(config.proxy).toMatchObject({
      requestBuffering: false,
      clientBodyBufferSizeBytes: 128 * 1024,
      clientBodyTimeoutMs: 10_000,
      buffering: true,
      buffersBytes: 128 * 1024,
      maxTempFileSizeBytes: 0,
      tempPath: '/var/tmp/sockproxy',
    });
    const yamlBooleans = parseConfig(`${MINIMAL}proxy:\n  buffering: false\n  buffers: 256k\n  request_buffering: true\n`, 'x');
    expect(yamlBooleans.proxy).toMatchObject({ buffering: false, buffersBytes: 256 * 1024, requestBuffering: true });
  });

  it('reads max_upgraded; 0 means unlimited', () => {
    expect(parseConfig(`${MINIMAL}proxy:\n  max_upgraded: 5000\n`, 'x').proxy.maxUpgraded).toBe(5000);
    expect(parseConfig(`${MINIMAL}proxy:\n  max_upgraded: 0\n`, 'x').proxy.maxUpgraded).toBe(0);
  });

  it('reads shutdown_timeout and pid (an absolute path or off)', () => {
    const config = parseConfig(`${MINIMAL}shutdown_timeout: 1m30s\npid: /run/sockproxy.pid\n`, 'x');
    expect(config).toMatchObject({ shutdownTimeoutMs: 90_000, pid: { kind: 'file', path: '/run/sockproxy.pid' } });
    expect(parseConfig(`${MINIMAL}pid: off\n`, 'x').pid).toEqual({ kind: 'off' });
  });

  it('keeps set_header in file order, names lower-cased, "" as removal', () => {
    const config = parseConfig(
      `${MINIMAL}proxy:
  set_header:
    Host: $http_host
    X-Forwarded-For: $proxy_add_x_forwarded_for
    Upgrade: $http_upgrade
    Connection: "upgrade"
    Accept-Encoding: ""
`,
      'x',
    );
    expect(config.proxy.setHeader).toEqual([
      { name: 'host', template: [{ variable: 'http_host' }] },
      { name: 'x-forwarded-for', template: [{ variable: 'proxy_add_x_forwarded_for' }] },
      { name: 'upgrade', template: [{ variable: 'http_upgrade' }] },
      { name: 'connection', template: ['upgrade'] },
      { name: 'accept-encoding', template: [] },
    ]);
  });

  it.each<[string, Config['log']['access']]>([
    ['stdout', { kind: 'stdout' }],
    ['stderr', { kind: 'stderr' }],
    ['off', { kind: 'off' }],
    ['logs/access.log', { kind: 'file', path: 'logs/access.log' }],
    ['/var/log/sockproxy.log', { kind: 'file', path: '/var/log/sockproxy.log' }],
  ])('log.access %s', (value, access) => {
    expect(parseConfig(`${MINIMAL}log:\n  access: ${value}\n  level: debug\n`, 'x').log).toEqual({ level: 'debug', access });
  });

  it('accepts empty optional sections', () => {
    expect(parseConfig(`${MINIMAL}proxy:\nlog:\n`, 'x').log.level).toBe('info');
  });

  it.each<[string, Balance]>([
    ['round_robin', { method: 'round_robin' }],
    ['least_conn', { method: 'least_conn' }],
    ['ip_hash', { method: 'ip_hash' }],
    ['random', { method: 'random', two: false }],
    ['random two', { method: 'random', two: true }],
    ['random two least_conn', { method: 'random', two: true }],
    ['hash $request_uri', { method: 'hash', key: [{ variable: 'request_uri' }], consistent: false }],
    ['hash $remote_addr consistent', { method: 'hash', key: [{ variable: 'remote_addr' }], consistent: true }],
    ['"  hash   $scheme$request_uri\tconsistent "', { method: 'hash', key: [{ variable: 'scheme' }, { variable: 'request_uri' }], consistent: true }],
    ['hash user-${http_x_user}', { method: 'hash', key: ['user-', { variable: 'http_x_user' }], consistent: false }],
    ['hash static-key', { method: 'hash', key: ['static-key'], consistent: false }],
  ])('balance: %s', (value, balance) => {
    const config = parseConfig(`${MINIMAL}  balance: ${value}\n`, 'x');
    expect(config.http!.upstream.balance).toEqual(balance);
    expect(Object.isFrozen(config.http!.upstream.balance)).toBe(true);
  });

  it.each(['least_conn', 'hash $request_uri'])('balance: %s allows down servers', (value) => {
    const config = parseConfig(`listen: 8080\nupstream:\n  balance: ${value}\n  servers: [unix:/a, unix:/b down]\n`, 'x');
    expect(config.http!.upstream.servers[1]!.down).toBe(true);
  });

  it('follows YAML aliases', () => {
    const config = parseConfig(`listen: &port 8080\nupstream:\n  servers: [unix:/a]\n  keepalive: *port\n`, 'x');
    expect(config.http!.upstream.keepalive).toBe(8080);
  });
});

describe('parseConfig errors: file:line:col, nginx wording, offending value, YAML path', () => {
  const upstream = (servers: string) => `listen: 8080\nupstream:\n  servers:\n${servers}`;
  const proxy = (body: string) => `${MINIMAL}proxy:\n${body}`;

  it.each<[string, string, string]>([
    // YAML itself
    ['syntax error', 'listen: [8080\nupstream: {}\n', 'bad.yaml:2:1: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['duplicate key', 'listen: 1\nlisten: 2\n', 'bad.yaml:2:1: Map keys must be unique'],
    ['empty file', '', 'bad.yaml: the configuration is empty: it needs at least "listen" and "upstream.servers", or "stream"'],
    ['comments only', '# nothing\n', 'bad.yaml: the configuration is empty: it needs at least "listen" and "upstream.servers", or "stream"'],
    ['not a mapping', '- 8080\n', 'bad.yaml:1:1: the configuration must be a mapping with "listen" and "upstream", got a list'],
    // keys
    ['misspelt key', 'listne: 8080\n', 'bad.yaml:1:1: unknown key "listne" (did you mean "listen"?)'],
    ['unknown key', 'listen: 8080\nfoo: 1\n', 'bad.yaml:2:1: unknown key "foo"'],
    ['misspelt short key', 'listen: 8080\nlogs: {}\n', 'bad.yaml:2:1: unknown key "logs" (did you mean "log"?)'],
    ['key in another case', 'Listen: 8080\n', 'bad.yaml:1:1: unknown key "Listen" (did you mean "listen"?)'],
    [
      'misspelt nested key',
      `listen: 8080\nupstream:\n  servers: [unix:/a]\n  balanse: ip_hash\n`,
      'bad.yaml:4:3: unknown key "balanse" in upstream (did you mean "balance"?)',
    ],
    ['misspelt proxy key', proxy('  read_timout: 5s\n'), 'bad.yaml:6:3: unknown key "read_timout" in proxy (did you mean "read_timeout"?)'],
    ['missing listen', 'upstream:\n  servers: [unix:/a]\n', 'bad.yaml:1:1: missing required key "listen"'],
    ['a relative pid file', `${MINIMAL}pid: run/sp.pid\n`, 'bad.yaml:5:6: pid must be an absolute file path or off, got "run/sp.pid"'],
    [
      'shutdown_timeout 0',
      `${MINIMAL}shutdown_timeout: 0\n`,
      'bad.yaml:5:19: shutdown_timeout must be a duration like 60s, 1m30s or 500ms (more than 0, at most 24d20h), got "0"',
    ],
    ['missing upstream', 'listen: 8080\n', 'bad.yaml:1:1: missing required key "upstream"'],
    ['missing servers', 'listen: 8080\nupstream:\n  name: app\n', 'bad.yaml:3:3: missing required key "servers" in upstream'],
    // listen
    ['bad listen port', 'listen: "127.0.0.1:99999"\n', 'bad.yaml:1:9: invalid port in "127.0.0.1:99999" in listen'],
    ['bad listen in list', 'listen:\n  - 8080\n  - nope\n', 'bad.yaml:3:5: invalid listen address "nope" (expected PORT, HOST:PORT, [IPv6]:PORT or unix:PATH) in listen[1]'],
    ['duplicate listen', 'listen: [8080, "8080"]\n', 'bad.yaml:1:16: a duplicate listen "*:8080" in listen[1]'],
    ['empty listen list', 'listen: []\n', 'bad.yaml:1:9: listen must be a port, an address or a list of them, got an empty list'],
    ['listen mapping', 'listen: {port: 1}\n', 'bad.yaml:1:9: listen must be a port like 8080, an address like "127.0.0.1:8080" or "unix:/run/sockproxy.sock", got a mapping'],
    // servers
    ['empty servers', upstream('    []\n').replace('servers:\n    []', 'servers: []'), 'bad.yaml:3:12: no servers are inside upstream in upstream.servers'],
    ['null servers', 'listen: 8080\nupstream:\n  servers:\n  # - unix:/a\n', 'bad.yaml:3:11: no servers are inside upstream in upstream.servers'],
    ['servers not a list', 'listen: 8080\nupstream:\n  servers: unix:/a\n', 'bad.yaml:3:12: upstream.servers must be a list, got "unix:/a"'],
    ['invalid parameter', upstream('    - unix:/a weight=0\n'), 'bad.yaml:4:7: invalid parameter "weight=0" in upstream.servers[0]'],
    ['invalid parameter, second server', upstream('    - unix:/a\n    - unix:/b max_fails=-1\n'), 'bad.yaml:5:7: invalid parameter "max_fails=-1" in upstream.servers[1]'],
    ['fail_timeout in ms', upstream('    - unix:/a fail_timeout=500ms\n'), 'bad.yaml:4:7: invalid parameter "fail_timeout=500ms" in upstream.servers[0]'],
    ['no unix path', upstream('    - "unix:"\n'), 'bad.yaml:4:7: no path in the unix domain socket in upstream "unix:" in upstream.servers[0]'],
    ['bad port', upstream('    - h:99999\n'), 'bad.yaml:4:7: invalid port in upstream "h:99999" in upstream.servers[0]'],
    ['server list item that is not a string', upstream('    - [unix:/a]\n'), 'bad.yaml:4:7: upstream.servers[0] must be a server line like "unix:/run/app.sock" or "127.0.0.1:8000 weight=2", or a mapping, got a list'],
    ['server as a number', upstream('    - 8000\n'), 'bad.yaml:4:7: invalid host in upstream "8000" in upstream.servers[0]'],
    [
      'backup with ip_hash',
      `listen: 8080\nupstream:\n  balance: ip_hash\n  servers:\n    - unix:/a\n    - unix:/b backup\n`,
      'bad.yaml:6:7: balancing method does not support parameter "backup" in upstream.servers[1] (balance is "ip_hash")',
    ],
    [
      'backup with random, mapping form',
      `listen: 8080\nupstream:\n  servers:\n    - address: unix:/b\n      backup: true\n  balance: random\n`,
      'bad.yaml:4:7: balancing method does not support parameter "backup" in upstream.servers[0] (balance is "random")',
    ],
    ['mapping: bad weight', upstream('    - address: unix:/a\n      weight: 0\n'), 'bad.yaml:5:15: upstream.servers[0].weight must be an integer >= 1, got "0"'],
    ['mapping: bad fail_timeout', upstream('    - {address: unix:/a, fail_timeout: 1.5}\n'), 'bad.yaml:4:40: upstream.servers[0].fail_timeout must be a duration in seconds like 10, 10s or 1m30s, got "1.5"'],
    ['mapping: backup not boolean', upstream('    - {address: unix:/a, backup: yes}\n'), 'bad.yaml:4:34: upstream.servers[0].backup must be true or false, got "yes"'],
    ['mapping: no address', upstream('    - {weight: 2}\n'), 'bad.yaml:4:7: missing required key "address" in upstream.servers[0]'],
    ['mapping: bad address', upstream('    - address: "h:0"\n'), 'bad.yaml:4:16: invalid port in upstream "h:0" in upstream.servers[0].address'],
    ['mapping: misspelt key', upstream('    - {address: unix:/a, wieght: 2}\n'), 'bad.yaml:4:26: unknown key "wieght" in upstream.servers[0] (did you mean "weight"?)'],
    // upstream
    [
      'bad balance',
      `listen: 8080\nupstream:\n  servers: [unix:/a]\n  balance: rr\n`,
      'bad.yaml:4:12: upstream.balance must be one of round_robin, least_conn, ip_hash, hash KEY [consistent], random [two [least_conn]], got "rr"',
    ],
    // balance: nginx's words for each directive (ngx_http_upstream_hash, ngx_http_upstream_random)
    ...(
      [
        ['random three', 'invalid parameter "three"'],
        ['random two most_conn', 'invalid parameter "most_conn"'],
        ['random two least_conn extra', 'invalid number of arguments in "random" directive'],
        ['hash', 'invalid number of arguments in "hash" directive'],
        ['hash $uri consistent extra', 'invalid number of arguments in "hash" directive'],
        ['hash $uri Consistent', 'invalid parameter "Consistent"'],
        ['hash $foo', 'unknown "foo" variable'],
        // the key is compiled before the second word is looked at
        ['hash $foo bar', 'unknown "foo" variable'],
        ['hash ${uri', 'the closing bracket in "uri" variable is missing'],
        ['least_conn now', 'invalid number of arguments in "least_conn" directive'],
        ['ip_hash consistent', 'invalid number of arguments in "ip_hash" directive'],
        ['"  random  seven"', 'invalid parameter "seven"'],
      ] as const
    ).map(([value, text]): [string, string, string] => [
      `balance: ${value}`,
      `listen: 8080\nupstream:\n  servers: [unix:/a]\n  balance: ${value}\n`,
      `bad.yaml:4:12: ${text} in upstream.balance`,
    ]),
    ['empty balance', `listen: 8080\nupstream:\n  servers: [unix:/a]\n  balance: ""\n`, 'bad.yaml:4:12: upstream.balance must be one of round_robin, least_conn, ip_hash, hash KEY [consistent], random [two [least_conn]], got ""'],
    ['balance as a list', `listen: 8080\nupstream:\n  servers: [unix:/a]\n  balance: [hash, $uri]\n`, 'bad.yaml:4:12: upstream.balance must be one of round_robin, least_conn, ip_hash, hash KEY [consistent], random [two [least_conn]], got a list'],
    [
      'backup with hash',
      `listen: 8080\nupstream:\n  balance: hash $request_uri consistent\n  servers:\n    - unix:/a\n    - unix:/b backup\n`,
      'bad.yaml:6:7: balancing method does not support parameter "backup" in upstream.servers[1] (balance is "hash $request_uri consistent")',
    ],
    [
      'backup with random two, mapping form',
      `listen: 8080\nupstream:\n  servers:\n    - address: unix:/b\n      backup: true\n  balance: random two least_conn\n`,
      'bad.yaml:4:7: balancing method does not support parameter "backup" in upstream.servers[0] (balance is "random two least_conn")',
    ],
    ['bad keepalive', `listen: 8080\nupstream:\n  servers: [unix:/a]\n  keepalive: many\n`, 'bad.yaml:4:14: upstream.keepalive must be a non-negative integer, got "many"'],
    ['negative keepalive', `listen: 8080\nupstream:\n  servers: [unix:/a]\n  keepalive: -1\n`, 'bad.yaml:4:14: upstream.keepalive must be a non-negative integer, got "-1"'],
    ['empty keepalive', `listen: 8080\nupstream:\n  servers: [unix:/a]\n  keepalive:\n`, 'bad.yaml:4:13: upstream.keepalive must be a non-negative integer, got nothing'],
    ['bad name', `listen: 8080\nupstream:\n  name: my app\n  servers: [unix:/a]\n`, 'bad.yaml:3:9: upstream.name must be a host name (letters, digits, ".", "-", "_"), got "my app"'],
    // proxy
    ['bad next_upstream token', proxy('  next_upstream: error http_501\n'), 'bad.yaml:6:18: invalid value "http_501" in proxy.next_upstream'],
    ['bad next_upstream list item', proxy('  next_upstream:\n    - error\n    - http_501\n'), 'bad.yaml:8:7: invalid value "http_501" in proxy.next_upstream'],
    ['empty next_upstream', proxy('  next_upstream: ""\n'), 'bad.yaml:6:18: proxy.next_upstream must list conditions like "error timeout http_502", or "off", got ""'],
    ['bad duration', proxy('  read_timeout: 5x\n'), 'bad.yaml:6:17: proxy.read_timeout must be a duration like 60s, 1m30s or 500ms (more than 0, at most 24d20h), got "5x"'],
    ['zero read_timeout', proxy('  read_timeout: 0\n'), 'bad.yaml:6:17: proxy.read_timeout must be a duration like 60s, 1m30s or 500ms (more than 0, at most 24d20h), got "0"'],
    ['too long timeout', proxy('  connect_timeout: 30d\n'), 'bad.yaml:6:20: proxy.connect_timeout must be a duration like 60s, 1m30s or 500ms (more than 0, at most 24d20h), got "30d"'],
    ['fractional timeout', proxy('  next_upstream_timeout: 1.5\n'), 'bad.yaml:6:26: proxy.next_upstream_timeout must be a duration like 60s, 1m30s or 500ms (0 = unlimited, at most 24d20h), got "1.5"'],
    ['bad size', proxy('  client_max_body_size: 1.5m\n'), 'bad.yaml:6:25: proxy.client_max_body_size must be a size like 1m, 512k or 4g (0 = unlimited), got "1.5m"'],
    ['flag not on/off', proxy('  buffering: maybe\n'), 'bad.yaml:6:14: proxy.buffering must be on or off, got "maybe"'],
    ['bad buffers', proxy('  buffers: 8 x 8k\n'), 'bad.yaml:6:12: proxy.buffers must be a size like 64k, or nginx\'s "8 8k", got "8 x 8k"'],
    ['zero buffer size', proxy('  client_body_buffer_size: 0\n'), 'bad.yaml:6:28: proxy.client_body_buffer_size must be a size like 8k or 16k (more than 0), got "0"'],
    ['relative temp_path', proxy('  temp_path: tmp\n'), 'bad.yaml:6:14: proxy.temp_path must be an absolute directory path, got "tmp"'],
    ['bad max_upgraded', proxy('  max_upgraded: lots\n'), 'bad.yaml:6:17: proxy.max_upgraded must be a non-negative integer (0 = unlimited), got "lots"'],
    ['negative max_upgraded', proxy('  max_upgraded: -1\n'), 'bad.yaml:6:17: proxy.max_upgraded must be a non-negative integer (0 = unlimited), got "-1"'],
    ['misspelt max_upgraded', proxy('  max_upgrades: 10\n'), 'bad.yaml:6:3: unknown key "max_upgrades" in proxy (did you mean "max_upgraded"?)'],
    ['bad tries', proxy('  next_upstream_tries: -1\n'), 'bad.yaml:6:24: proxy.next_upstream_tries must be a non-negative integer, got "-1"'],
    ['unknown variable', proxy('  set_header:\n    X-Foo: a $foo\n'), 'bad.yaml:7:12: unknown "foo" variable in proxy.set_header.X-Foo'],
    ['bad header name', proxy('  set_header:\n    "X Foo": a\n'), 'bad.yaml:7:5: invalid header name "X Foo" in proxy.set_header (RFC 9110 token characters only)'],
    ['duplicate header', proxy('  set_header:\n    X-Foo: a\n    x-foo: b\n'), 'bad.yaml:8:5: duplicate header "x-foo" in proxy.set_header'],
    ['header value with newline', proxy('  set_header:\n    X-Foo: "a\\nb"\n'), 'bad.yaml:7:12: proxy.set_header.X-Foo must not contain CR, LF or NUL, got "a\\nb"'],
    ['null header value', proxy('  set_header:\n    X-Foo:\n'), 'bad.yaml:7:11: proxy.set_header.X-Foo must be a string ("" removes the header), got nothing'],
    ['set_header as a list', proxy('  set_header: [a]\n'), 'bad.yaml:6:15: proxy.set_header must be a mapping, got a list'],
    ['proxy as a scalar', `${MINIMAL}proxy: yes\n`, 'bad.yaml:5:8: proxy must be a mapping, got "yes"'],
    // log
    ['bad level', `${MINIMAL}log:\n  level: verbose\n`, 'bad.yaml:6:10: log.level must be one of trace, debug, info, warn, error, fatal, got "verbose"'],
    ['empty access', `${MINIMAL}log:\n  access: ""\n`, 'bad.yaml:6:11: log.access must be stdout, stderr, off or a file path, got ""'],
  ])('%s', (_name, source, message) => {
    expect(errorOf(source)).toBe(message);
  });

  it('gives code, file, line, column and path as fields', () => {
    let error: ConfigError | undefined;
    try {
      parseConfig(`listen: 8080\nupstream:\n  servers:\n    - unix:/a\n    - unix:/b weight=0\n`, 'config/bad.yaml');
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toMatchObject({
      code: 'SOCKPROXY_CONFIG_INVALID',
      file: 'config/bad.yaml',
      line: 5,
      column: 7,
      path: 'upstream.servers[1]',
      text: 'invalid parameter "weight=0" in upstream.servers[1]',
      message: 'config/bad.yaml:5:7: invalid parameter "weight=0" in upstream.servers[1]',
    });
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sockproxy-config-'));

  it('reads a file', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, MINIMAL);
    expect((await loadConfig(file)).file).toBe(file);
  });

  it('reports a missing file with the errno text and no stack', async () => {
    const file = join(dir, 'missing.yaml');
    await expect(loadConfig(file)).rejects.toMatchObject({
      code: 'SOCKPROXY_CONFIG_INVALID',
      message: `cannot read config file "${file}": No such file or directory`,
    });
  });

  it('reports a directory', async () => {
    await expect(loadConfig(dir)).rejects.toMatchObject({
      message: `cannot read config file "${dir}": Is a directory`,
    });
  });
});
