import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';

const base = 'listen: 8080\nupstream:\n  servers: [ "unix:/tmp/a.sock" ]\n';

describe('http: client_header_timeout, keepalive_*, large_client_header_buffers, max_connections', () => {
  it("defaults to nginx's: 60s, 75s, 1000, 4 8k, 1024", () => {
    expect(parseConfig(base, 'c.yaml').client).toEqual({
      headerTimeoutMs: 60_000,
      keepaliveTimeoutMs: 75_000,
      keepaliveRequests: 1000,
      headerBuffers: { number: 4, sizeBytes: 8192 },
      maxConnections: 1024,
    });
  });

  it('reads nginx units and syntax', () => {
    const config = parseConfig(
      `${base}http:\n  client_header_timeout: 1s\n  keepalive_timeout: 0\n  keepalive_requests: 3\n  large_client_header_buffers: 2 1k\n  max_connections: 10\n`,
      'c.yaml',
    );
    expect(config.client).toEqual({
      headerTimeoutMs: 1000,
      keepaliveTimeoutMs: 0,
      keepaliveRequests: 3,
      headerBuffers: { number: 2, sizeBytes: 1024 },
      maxConnections: 10,
    });
  });

  it.each([
    ['http:\n  client_header_timeout: 0\n', 'c.yaml:5:26: http.client_header_timeout must be'],
    ['http:\n  keepalive_requests: 0\n', 'c.yaml:5:23: http.keepalive_requests must be a positive integer, got "0"'],
    ['http:\n  max_connections: lots\n', 'c.yaml:5:20: http.max_connections must be a positive integer, got "lots"'],
    ['http:\n  large_client_header_buffers: 8k\n', 'c.yaml:5:32: http.large_client_header_buffers must be nginx\'s "NUMBER SIZE", like "4 8k", got "8k"'],
    ['http:\n  large_client_header_buffers: 4 0\n', 'large_client_header_buffers must be nginx\'s "NUMBER SIZE"'],
    // The body's settings stay under proxy: a clear pointer there, not "unknown key".
    ['http:\n  client_body_timeout: 5s\n', 'c.yaml:5:24: client_body_timeout is set under "proxy" (proxy.client_body_timeout)'],
    ['http:\n  client_max_body_size: 5m\n', 'client_max_body_size is set under "proxy" (proxy.client_max_body_size)'],
    ['http:\n  worker_connections: 5\n', 'unknown key "worker_connections" in http'],
  ])('rejects %j', (extra, message) => {
    expect(() => parseConfig(`${base}${extra}`, 'c.yaml')).toThrow(message);
  });
});
