import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';

const base = 'listen: 8080\nupstream:\n  servers: [ "unix:/tmp/a.sock" ]\n';

describe('workers (nginx worker_processes)', () => {
  it('defaults to 1: one process, no primary', () => {
    expect(parseConfig(base, 'c.yaml').workers).toBe(1);
  });

  it('takes a count, or auto for the CPUs this process may use', () => {
    expect(parseConfig(`${base}workers: 3\n`, 'c.yaml').workers).toBe(3);
    expect(parseConfig(`${base}workers: auto\n`, 'c.yaml').workers).toBe(os.availableParallelism());
  });

  it.each([
    ['workers: 0\n', 'c.yaml:4:10: workers must be auto or a positive integer like 2, got "0"'],
    ['workers: two\n', 'c.yaml:4:10: workers must be auto or a positive integer like 2, got "two"'],
    ['workers: 1.5\n', 'c.yaml:4:10: workers must be auto or a positive integer like 2, got "1.5"'],
    ['workers: [2]\n', 'c.yaml:4:10: workers must be auto or a positive integer like 2, got a list'],
  ])('rejects %j', (extra, message) => {
    expect(() => parseConfig(`${base}${extra}`, 'c.yaml')).toThrow(message);
  });
});

describe('admin: { listen }', () => {
  it('is off unless present', () => {
    expect(parseConfig(base, 'c.yaml').admin).toBeUndefined();
  });

  it('`admin:` alone listens on 127.0.0.1:9180', () => {
    expect(parseConfig(`${base}admin:\n`, 'c.yaml').admin).toEqual({ listen: { kind: 'tcp', host: '127.0.0.1', port: 9180 } });
  });

  it('a bare port is loopback only, unlike `listen: 8080`; a written address is kept, unix: too', () => {
    expect(parseConfig(`${base}admin:\n  listen: 9300\n`, 'c.yaml').admin!.listen).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 9300 });
    expect(parseConfig(`${base}admin:\n  listen: 0.0.0.0:9300\n`, 'c.yaml').admin!.listen).toEqual({ kind: 'tcp', host: '0.0.0.0', port: 9300 });
    expect(parseConfig(`${base}admin:\n  listen: unix:/run/sp-admin.sock mode=0600\n`, 'c.yaml').admin!.listen).toEqual({
      kind: 'unix',
      path: '/run/sp-admin.sock',
      mode: 0o600,
    });
  });

  it.each([
    ['admin:\n  listen: nope\n', 'c.yaml:5:11: invalid listen address "nope" (expected PORT, HOST:PORT, [IPv6]:PORT or unix:PATH) in admin.listen'],
    ['admin:\n  listen: 127.0.0.1:99999\n', 'c.yaml:5:11: invalid port in "127.0.0.1:99999" in admin.listen'],
    ['admin:\n  lisen: 9180\n', 'c.yaml:5:3: unknown key "lisen" in admin (did you mean "listen"?)'],
    ['admin: 9180\n', 'c.yaml:4:8: admin must be a mapping, got "9180"'],
    // The HTTP listen is a bare 8080: every address, so 127.0.0.1:8080 would fail to bind.
    ['admin:\n  listen: 8080\n', 'c.yaml:5:11: admin.listen "127.0.0.1:8080" is also listened on by listen ("*:8080")'],
    [
      'stream:\n  - listen: unix:/tmp/s.sock\n    upstream: {servers: [unix:/tmp/e.sock]}\nadmin:\n  listen: unix:/tmp/s.sock\n',
      'c.yaml:8:11: admin.listen "unix:/tmp/s.sock" is also listened on by stream[0].listen ("unix:/tmp/s.sock")',
    ],
  ])('rejects %j with file:line:col', (extra, message) => {
    expect(() => parseConfig(`${base}${extra}`, 'c.yaml')).toThrow(message);
  });

  it('another port, or another host on the same port, is fine', () => {
    const config = parseConfig('listen: 127.0.0.1:8080\nupstream:\n  servers: [unix:/a]\nadmin:\n  listen: 127.0.0.2:8080\n', 'c.yaml');
    expect(config.admin!.listen).toEqual({ kind: 'tcp', host: '127.0.0.2', port: 8080 });
  });
});
