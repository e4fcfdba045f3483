import { describe, expect, it } from 'vitest';
import { parseServerAddress, parseServerLine } from '../../../src/config/server-line.js';
import type { ServerConfig } from '../../../src/config/types.js';

const DEFAULTS = { weight: 1, maxFails: 1, failTimeoutSec: 10, maxConns: 0, backup: false, down: false };

describe('parseServerLine', () => {
  it.each<[string, ServerConfig]>([
    ['unix:/tmp/gunicorn.sock', { address: { kind: 'unix', path: '/tmp/gunicorn.sock' }, written: 'unix:/tmp/gunicorn.sock', ...DEFAULTS }],
    ['UNIX:/tmp/a.sock', { address: { kind: 'unix', path: '/tmp/a.sock' }, written: 'UNIX:/tmp/a.sock', ...DEFAULTS }],
    ['unix:/tmp/gunicorn.sock fail_timeout=0', { address: { kind: 'unix', path: '/tmp/gunicorn.sock' }, written: 'unix:/tmp/gunicorn.sock', ...DEFAULTS, failTimeoutSec: 0 }],
    // pasted from nginx.conf, keyword and semicolon included
    ['server unix:/x fail_timeout=0;', { address: { kind: 'unix', path: '/x' }, written: 'unix:/x', ...DEFAULTS, failTimeoutSec: 0 }],
    ['  server   unix:/x   ;  ', { address: { kind: 'unix', path: '/x' }, written: 'unix:/x', ...DEFAULTS }],
    ['127.0.0.1:8000', { address: { kind: 'tcp', host: '127.0.0.1', port: 8000 }, written: '127.0.0.1:8000', ...DEFAULTS }],
    ['app', { address: { kind: 'tcp', host: 'app', port: 80 }, written: 'app', ...DEFAULTS }],
    ['server', { address: { kind: 'tcp', host: 'server', port: 80 }, written: 'server', ...DEFAULTS }],
    ['localhost:8000', { address: { kind: 'tcp', host: 'localhost', port: 8000 }, written: 'localhost:8000', ...DEFAULTS }],
    ['[::1]:8000', { address: { kind: 'tcp', host: '::1', port: 8000 }, written: '[::1]:8000', ...DEFAULTS }],
    ['[::1]', { address: { kind: 'tcp', host: '::1', port: 80 }, written: '[::1]', ...DEFAULTS }],
    [
      '127.0.0.1:8000 weight=2 max_fails=3 fail_timeout=30s',
      { address: { kind: 'tcp', host: '127.0.0.1', port: 8000 }, written: '127.0.0.1:8000', ...DEFAULTS, weight: 2, maxFails: 3, failTimeoutSec: 30 },
    ],
    ['h:1 fail_timeout=1m30s', { address: { kind: 'tcp', host: 'h', port: 1 }, written: 'h:1', ...DEFAULTS, failTimeoutSec: 90 }],
    ['h:1 fail_timeout=1h', { address: { kind: 'tcp', host: 'h', port: 1 }, written: 'h:1', ...DEFAULTS, failTimeoutSec: 3600 }],
    ['h:1 max_fails=0 max_conns=0', { address: { kind: 'tcp', host: 'h', port: 1 }, written: 'h:1', ...DEFAULTS, maxFails: 0 }],
    ['h:1 max_conns=10', { address: { kind: 'tcp', host: 'h', port: 1 }, written: 'h:1', ...DEFAULTS, maxConns: 10 }],
    ['h:1 backup', { address: { kind: 'tcp', host: 'h', port: 1 }, written: 'h:1', ...DEFAULTS, backup: true }],
    ['h:1 down', { address: { kind: 'tcp', host: 'h', port: 1 }, written: 'h:1', ...DEFAULTS, down: true }],
    // as in nginx, a repeated parameter overrides the earlier one
    ['h:1 weight=2 weight=5', { address: { kind: 'tcp', host: 'h', port: 1 }, written: 'h:1', ...DEFAULTS, weight: 5 }],
    ['h:1\tweight=2', { address: { kind: 'tcp', host: 'h', port: 1 }, written: 'h:1', ...DEFAULTS, weight: 2 }],
  ])('%j', (line, expected) => {
    expect(parseServerLine(line)).toEqual(expected);
  });

  it('returns a frozen object', () => {
    const server = parseServerLine('unix:/x weight=2') as ServerConfig;
    expect(Object.isFrozen(server)).toBe(true);
    expect(Object.isFrozen(server.address)).toBe(true);
  });

  const longPath = `/${'a'.repeat(107)}`;
  const maxPath = `/${'a'.repeat(106)}`;

  it('accepts a 107-byte unix path (sun_path holds 108 with the NUL)', () => {
    expect(parseServerLine(`unix:${maxPath}`)).toEqual({ address: { kind: 'unix', path: maxPath }, written: `unix:${maxPath}`, ...DEFAULTS });
  });

  it.each<[string, string]>([
    ['', 'invalid number of arguments in "server" directive'],
    ['server ;', 'invalid number of arguments in "server" directive'],
    ['unix:', 'no path in the unix domain socket in upstream "unix:"'],
    ['unix: weight=2', 'no path in the unix domain socket in upstream "unix:"'],
    [`unix:${longPath}`, `too long path in the unix domain socket in upstream "unix:${longPath}"`],
    ['h:99999', 'invalid port in upstream "h:99999"'],
    ['h:0', 'invalid port in upstream "h:0"'],
    ['h:', 'invalid port in upstream "h:"'],
    ['h:x', 'invalid port in upstream "h:x"'],
    ['::1', 'invalid port in upstream "::1"'],
    ['[::1]:0', 'invalid port in upstream "[::1]:0"'],
    [':80', 'no host in upstream ":80"'],
    ['[]:80', 'no host in upstream "[]:80"'],
    ['[::1', 'invalid host in upstream "[::1"'],
    ['[::1]x', 'invalid host in upstream "[::1]x"'],
    ['[nope]:80', 'invalid IPv6 address in upstream "[nope]:80"'],
    ['h/x:80', 'invalid host in upstream "h/x:80"'],
    ['8000', 'invalid host in upstream "8000"'],
    ['h:1 weight=0', 'invalid parameter "weight=0"'],
    ['h:1 weight=-1', 'invalid parameter "weight=-1"'],
    ['h:1 weight=x', 'invalid parameter "weight=x"'],
    ['h:1 weight=', 'invalid parameter "weight="'],
    ['h:1 weight=1.5', 'invalid parameter "weight=1.5"'],
    ['h:1 Weight=2', 'invalid parameter "Weight=2"'],
    ['h:1 max_fails=-1', 'invalid parameter "max_fails=-1"'],
    ['h:1 max_conns=-1', 'invalid parameter "max_conns=-1"'],
    ['h:1 fail_timeout=500ms', 'invalid parameter "fail_timeout=500ms"'],
    ['h:1 fail_timeout=-1', 'invalid parameter "fail_timeout=-1"'],
    ['h:1 fail_timeout=1.5', 'invalid parameter "fail_timeout=1.5"'],
    ['h:1 foo=1', 'invalid parameter "foo=1"'],
    ['h:1 backup=1', 'invalid parameter "backup=1"'],
    ['h:1 resolve', 'invalid parameter "resolve"'],
    ['h:1 constructor=1', 'invalid parameter "constructor=1"'],
    // nginx checks the parameters before the address
    ['h:99999 weight=0', 'invalid parameter "weight=0"'],
  ])('%j → %s', (line, error) => {
    expect(parseServerLine(line)).toEqual({ error });
  });
});

describe('parseServerAddress', () => {
  it('keeps host names as written: they are resolved when connecting, not at load', () => {
    expect(parseServerAddress('app.internal:8000')).toEqual({ kind: 'tcp', host: 'app.internal', port: 8000 });
  });
});
