import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { judge } from '../../fuzz/lib/fuzz-run.js';
import type { SeenRequest } from '../../fuzz/lib/recording-upstream.js';

/**
 * The fuzz run's verdict on one input with request buffering off, where a request may
 * reach the upstream cut off: what it accepts there, and what it still fails.
 */
const INPUT = Buffer.from('POST /p HTTP/1.1\r\nHost: fuzz.test\r\nContent-Length: 10\r\n\r\nhello', 'latin1');
const ANSWERED_408 = { received: 'HTTP/1.1 408 Request Timeout\r\n\r\n', closed: true };

function seen(body: string, complete: boolean): SeenRequest {
  const bytes = Buffer.from(body, 'latin1');
  return {
    method: 'POST',
    target: '/p',
    bodyLength: bytes.length,
    bodySha256: createHash('sha256').update(bytes).digest('hex'),
    complete,
    partialBody: complete ? undefined : bytes,
    client: '127.1.0.0',
    requestId: 'r1',
  };
}

const logged = (status: number, upstream = 'unix:/app.sock') => [{ status, request_method: 'POST', request_uri: '/p', upstream_addr: upstream, request_id: 'r1' }];

describe('the fuzz verdict with request buffering off', () => {
  it('accepts a request cut off at the upstream with a prefix of the body llhttp read, refused with a 4xx', () => {
    expect(judge(INPUT, ANSWERED_408, logged(408), [seen('hello', false)], 'off')).toEqual([]);
    expect(judge(INPUT, ANSWERED_408, logged(408), [seen('hel', false)], 'off')).toEqual([]);
    // Aborted before a byte reached the upstream.
    expect(judge(INPUT, ANSWERED_408, logged(408), [], 'off')).toEqual([]);
  });

  it('fails a cut-off request whose bytes are not the input body, one that looks complete, and one answered as if served', () => {
    expect(judge(INPUT, ANSWERED_408, logged(408), [seen('hellx', false)], 'off')).toEqual([expect.stringContaining('cut off, which is not the start of an incomplete request')]);
    expect(judge(INPUT, ANSWERED_408, logged(408), [seen('hello', true)], 'off')).toEqual([
      'a request the upstream received whole (and answered 200) was logged with status 408',
      expect.stringContaining('which is not a request of the input as llhttp frames it'),
    ]);
    const answered200 = { received: 'HTTP/1.1 200 OK\r\n\r\n', closed: true };
    expect(judge(INPUT, answered200, logged(200), [seen('hello', false)], 'off')).toEqual(['a request cut off at the upstream was logged with status 200, not a 4xx']);
  });

  it('fails a request logged as forwarded that never reached the upstream, unless it was refused with request buffering off', () => {
    expect(judge(INPUT, ANSWERED_408, logged(408), [], 'on')).toEqual([expect.stringContaining('the upstream never received it')]);
  });
});
