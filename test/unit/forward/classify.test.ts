import { errors } from 'undici';
import { describe, expect, it } from 'vitest';
import { classifyUpstreamError } from '../../../src/forward/classify.js';

function errno(code: string, errnoNumber: number): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code, errno: -errnoNumber, syscall: 'connect' });
}

describe('classifyUpstreamError: nginx failure type and wording, by err.code', () => {
  it.each([
    [{ code: 'SOCKPROXY_SEND_TIMEOUT' }, 'sending', 'timeout', 'error', 'upstream timed out (110: Connection timed out)'],
    [{ code: 'SOCKPROXY_INVALID_HEADER' }, 'reading_header', 'invalid_header', 'error', 'upstream sent invalid header'],
    [errno('ENOENT', 2), 'connecting', 'error', 'crit', 'connect() to unix:/a.sock failed (2: No such file or directory)'],
    [errno('EACCES', 13), 'connecting', 'error', 'crit', 'connect() to unix:/a.sock failed (13: Permission denied)'],
    [errno('ECONNREFUSED', 111), 'connecting', 'error', 'error', 'connect() to unix:/a.sock failed (111: Connection refused)'],
    [errno('EAGAIN', 11), 'connecting', 'error', 'error', 'connect() to unix:/a.sock failed (11: Resource temporarily unavailable)'],
    [{ code: 'UND_ERR_CONNECT_TIMEOUT' }, 'connecting', 'timeout', 'error', 'upstream timed out (110: Connection timed out)'],
    [{ code: 'UND_ERR_HEADERS_TIMEOUT' }, 'reading_header', 'timeout', 'error', 'upstream timed out (110: Connection timed out)'],
    [{ code: 'UND_ERR_SOCKET' }, 'reading_header', 'error', 'error', 'upstream prematurely closed connection'],
    [errno('ECONNRESET', 104), 'reading_header', 'error', 'error', 'recv() failed (104: Connection reset by peer)'],
    [new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol (Invalid header token)'), 'reading_header', 'invalid_header', 'error', 'upstream sent invalid header'],
    [new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol (Invalid character in chunk size)'), 'reading_body', 'error', 'error', 'upstream sent invalid chunked response'],
    [new errors.ResponseContentLengthMismatchError(), 'reading_header', 'invalid_header', 'error', 'upstream sent invalid header'],
    [new errors.ResponseContentLengthMismatchError(), 'reading_body', 'error', 'error', 'upstream prematurely closed connection'],
    [{ code: 'UND_ERR_HEADERS_OVERFLOW' }, 'reading_header', 'invalid_header', 'error', 'upstream sent too big header'],
  ] as const)('%o while %s', (err, phase, kind, severity, message) => {
    expect(classifyUpstreamError(err, phase, 'unix:/a.sock')).toEqual({ kind, severity, message });
  });
});
