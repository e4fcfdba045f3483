import { errors } from 'undici';
import { describe, expect, it } from 'vitest';
import { classifyUpstreamError, describeTunnelEnding } from '../../../src/forward/classify.js';
import type { TunnelEnding } from '../../../src/tunnel.js';

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

describe('describeTunnelEnding: how a tunnel ended, in nginx\'s words and levels', () => {
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104, syscall: 'read' });
  const pipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' });
  it.each<[TunnelEnding, ReturnType<typeof describeTunnelEnding>]>([
    [{ kind: 'closed', side: 'client' }, undefined],
    [{ kind: 'shutdown' }, undefined],
    [{ kind: 'idle_timeout' }, { level: 'info', message: 'upstream timed out (110: Connection timed out)' }],
    [{ kind: 'send_timeout', side: 'upstream' }, { level: 'info', message: 'upstream timed out (110: Connection timed out)' }],
    [{ kind: 'send_timeout', side: 'client' }, { level: 'info', message: 'client timed out (110: Connection timed out)' }],
    [{ kind: 'error', side: 'upstream', error: reset }, { level: 'error', message: 'recv() failed (104: Connection reset by peer)' }],
    [{ kind: 'error', side: 'upstream', error: pipe }, { level: 'error', message: 'send() failed (32: Broken pipe)' }],
    [{ kind: 'error', side: 'client', error: reset }, { level: 'info', message: 'recv() failed (104: Connection reset by peer)' }],
  ])('%o', (ending, expected) => {
    expect(describeTunnelEnding(ending)).toEqual(expected);
  });
});
