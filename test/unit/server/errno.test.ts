import fs from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { describeErrno } from '../../../src/server/errno.js';

function errnoError(code: string, errno?: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code} error`), { code, errno });
}

describe('describeErrno', () => {
  it.each([
    ['ENOENT', '2: No such file or directory'],
    ['EAGAIN', '11: Resource temporarily unavailable'],
    ['EACCES', '13: Permission denied'],
    ['ENOTDIR', '20: Not a directory'],
    ['EINVAL', '22: Invalid argument'],
    ['EPIPE', '32: Broken pipe'],
    ['ENAMETOOLONG', '36: File name too long'],
    ['EADDRINUSE', '98: Address already in use'],
    ['EADDRNOTAVAIL', '99: Cannot assign requested address'],
    ['ECONNRESET', '104: Connection reset by peer'],
    ['ETIMEDOUT', '110: Connection timed out'],
    ['ECONNREFUSED', '111: Connection refused'],
  ])('%s → (%s), the words nginx prints', (code, expected) => {
    expect(describeErrno(errnoError(code))).toBe(expected);
  });

  it('describes a real failed lstat as nginx does', () => {
    let error: unknown;
    try {
      fs.lstatSync('/definitely/not/here');
    } catch (err) {
      error = err;
    }
    expect(describeErrno(error as NodeJS.ErrnoException)).toBe('2: No such file or directory');
  });

  it('describes a real refused connect', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const error = await new Promise<NodeJS.ErrnoException>((resolve) =>
      net.connect(port, '127.0.0.1').once('error', resolve),
    );
    expect(describeErrno(error)).toBe('111: Connection refused');
  });

  it("falls back to node's errno number and libuv's text for codes outside the table", () => {
    expect(describeErrno(errnoError('ENOSPC', -28))).toBe('28: no space left on device');
  });

  it('falls back to the code, then the message, when there is no errno', () => {
    expect(describeErrno(errnoError('ESOMETHING'))).toBe('ESOMETHING');
    expect(describeErrno(new Error('plain failure'))).toBe('plain failure');
  });
});
