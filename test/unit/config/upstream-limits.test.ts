import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';

const base = 'listen: 8080\nupstream:\n  servers: [ "unix:/tmp/a.sock" ]\n';

describe('upstream keepalive_timeout / keepalive_requests and proxy buffer_size', () => {
  it('defaults: 1500 ms (below Gunicorn\'s 2 s), 1000 requests, 8k', () => {
    const config = parseConfig(base, 'c.yaml');
    expect(config.http!.upstream.keepaliveTimeoutMs).toBe(1500);
    expect(config.http!.upstream.keepaliveRequests).toBe(1000);
    expect(config.proxy.bufferSizeBytes).toBe(8192);
  });

  it('reads nginx units', () => {
    const config = parseConfig(
      `${base}  keepalive_timeout: 1m\n  keepalive_requests: 50\nproxy:\n  buffer_size: 16k\n`,
      'c.yaml',
    );
    expect(config.http!.upstream.keepaliveTimeoutMs).toBe(60_000);
    expect(config.http!.upstream.keepaliveRequests).toBe(50);
    expect(config.proxy.bufferSizeBytes).toBe(16_384);
  });

  it.each([
    ['  keepalive_timeout: 0\n', 'c.yaml:4:22: upstream.keepalive_timeout must be'],
    ['  keepalive_requests: 0\n', 'c.yaml:4:23: upstream.keepalive_requests must be a positive integer, got "0"'],
    ['proxy:\n  buffer_size: lots\n', 'c.yaml:5:16: proxy.buffer_size must be a size like 8k or 16k (more than 0), got "lots"'],
  ])('rejects %j', (extra, message) => {
    expect(() => parseConfig(`${base}${extra}`, 'c.yaml')).toThrow(message);
  });
});
