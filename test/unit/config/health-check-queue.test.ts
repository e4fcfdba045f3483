import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { configErrorOf } from '../../helpers/config-error.js';

const base = 'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock max_conns=1\n    - unix:/tmp/b.sock\n';

const errorOf = (source: string): string => configErrorOf(source, 'c.yaml');

describe('upstream.health_check', () => {
  it('is off unless configured', () => {
    expect(parseConfig(base, 'c.yaml').http!.upstream.healthCheck).toBeUndefined();
  });

  it('alone, is nginx Plus\'s bare health_check: GET / every 5s, fails=1 passes=1, 2xx or 3xx, starts healthy', () => {
    expect(parseConfig(`${base}  health_check:\n`, 'c.yaml').http!.upstream.healthCheck).toEqual({
      uri: '/',
      intervalMs: 5_000,
      timeoutMs: 5_000,
      fails: 1,
      passes: 1,
      status: { negated: false, ranges: [[200, 399]], text: '200-399' },
      mandatory: false,
    });
  });

  it('reads every parameter in nginx units', () => {
    const yaml = `${base}  health_check:\n    uri: /health?full=1\n    interval: 1m30s\n    timeout: 500ms\n    fails: 3\n    passes: 2\n    status: "! 500-599"\n    mandatory: on\n`;
    expect(parseConfig(yaml, 'c.yaml').http!.upstream.healthCheck).toEqual({
      uri: '/health?full=1',
      intervalMs: 90_000,
      timeoutMs: 500,
      fails: 3,
      passes: 2,
      status: { negated: true, ranges: [[500, 599]], text: '! 500-599' },
      mandatory: true,
    });
  });

  it('a YAML number is a status code', () => {
    expect(parseConfig(`${base}  health_check:\n    status: 200\n`, 'c.yaml').http!.upstream.healthCheck?.status.ranges).toEqual([[200, 200]]);
  });

  it.each([
    [
      'interval 0',
      '    interval: 0\n',
      'c.yaml:7:15: upstream.health_check.interval must be a duration like 60s, 1m30s or 500ms (more than 0, at most 24d20h), got "0"',
    ],
    [
      'a bad status range',
      '    status: 399-200\n',
      'c.yaml:7:13: invalid status range "399-200" (the first code is larger than the second) in upstream.health_check.status' +
        ' (expected status codes or ranges like 200-399, "200 204" or "! 500-599")',
    ],
    ['an unknown key', '    intervall: 5s\n', 'c.yaml:7:5: unknown key "intervall" in upstream.health_check (did you mean "interval"?)'],
    ['fails: 0', '    fails: 0\n', 'c.yaml:7:12: upstream.health_check.fails must be a positive integer, got "0"'],
    ['a uri without a slash', '    uri: health\n', 'c.yaml:7:10: upstream.health_check.uri must be a path starting with "/", like /health, got "health"'],
    ['a uri with a space', '    uri: "/a b"\n', 'c.yaml:7:10: upstream.health_check.uri must be a path starting with "/", like /health, got "/a b"'],
    ['mandatory: yes', '    mandatory: yes\n', 'c.yaml:7:16: upstream.health_check.mandatory must be on or off, got "yes"'],
  ])('%s: an error at its position', (_name, lines, message) => {
    expect(errorOf(`${base}  health_check:\n${lines}`)).toBe(message);
  });

  it('a scalar instead of the mapping', () => {
    expect(errorOf(`${base}  health_check: on\n`)).toBe('c.yaml:6:17: upstream.health_check must be a mapping, got "on"');
  });
});

describe('upstream.queue', () => {
  it('is off unless configured; timeout defaults to nginx Plus\'s 60s', () => {
    expect(parseConfig(base, 'c.yaml').http!.upstream.queue).toBeUndefined();
    expect(parseConfig(`${base}  queue:\n    size: 100\n`, 'c.yaml').http!.upstream.queue).toEqual({ size: 100, timeoutMs: 60_000 });
    expect(parseConfig(`${base}  queue: {size: 5, timeout: 2s}\n`, 'c.yaml').http!.upstream.queue).toEqual({ size: 5, timeoutMs: 2_000 });
  });

  it('needs a server with max_conns: without one nothing would ever wait', () => {
    const yaml = 'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n    - unix:/tmp/b.sock max_conns=2 down\n  queue:\n    size: 10\n';
    expect(errorOf(yaml)).toBe(
      'c.yaml:6:3: upstream.queue needs max_conns on the servers: a request waits only while the servers are at their max_conns, and no server has max_conns',
    );
  });

  it.each([
    ['size missing', '  queue:\n    timeout: 1s\n', 'c.yaml:7:5: missing required key "size" in upstream.queue'],
    ['size 0', '  queue:\n    size: 0\n', 'c.yaml:7:11: upstream.queue.size must be a positive integer, got "0"'],
    [
      'timeout 0',
      '  queue:\n    size: 1\n    timeout: 0\n',
      'c.yaml:8:14: upstream.queue.timeout must be a duration like 60s, 1m30s or 500ms (more than 0, at most 24d20h), got "0"',
    ],
    ['an unknown key', '  queue:\n    size: 1\n    timout: 1s\n', 'c.yaml:8:5: unknown key "timout" in upstream.queue (did you mean "timeout"?)'],
  ])('%s', (_name, lines, message) => {
    expect(errorOf(`${base}${lines}`)).toBe(message);
  });
});
