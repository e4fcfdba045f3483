import { getSystemErrorMap } from 'node:util';

/**
 * Linux errno numbers and strerror(3) texts for the errors a proxy meets on bind() and
 * connect(). nginx prints a system error as "(N: text)", e.g.
 * `connect() to unix:/tmp/gunicorn.sock failed (2: No such file or directory)`;
 * operators search for those exact words, so we print the same instead of Node's
 * "ENOENT" / libuv's lower-case "no such file or directory".
 */
const ERRNO: Readonly<Record<string, readonly [number, string]>> = {
  EPERM: [1, 'Operation not permitted'],
  ENOENT: [2, 'No such file or directory'],
  // kill() of a pid file's process that is gone.
  ESRCH: [3, 'No such process'],
  EAGAIN: [11, 'Resource temporarily unavailable'],
  EACCES: [13, 'Permission denied'],
  ENOTDIR: [20, 'Not a directory'],
  EINVAL: [22, 'Invalid argument'],
  EMFILE: [24, 'Too many open files'],
  EROFS: [30, 'Read-only file system'],
  EPIPE: [32, 'Broken pipe'],
  ENAMETOOLONG: [36, 'File name too long'],
  ELOOP: [40, 'Too many levels of symbolic links'],
  ENOTSOCK: [88, 'Socket operation on non-socket'],
  // connect() to a SOCK_DGRAM unix socket.
  EPROTOTYPE: [91, 'Protocol wrong type for socket'],
  EADDRINUSE: [98, 'Address already in use'],
  EADDRNOTAVAIL: [99, 'Cannot assign requested address'],
  ENETUNREACH: [101, 'Network is unreachable'],
  ECONNRESET: [104, 'Connection reset by peer'],
  ETIMEDOUT: [110, 'Connection timed out'],
  ECONNREFUSED: [111, 'Connection refused'],
  EHOSTUNREACH: [113, 'No route to host'],
};

/**
 * "2: No such file or directory" for an ENOENT error: the part nginx puts in parentheses.
 * Codes outside the table fall back to Node's errno number and libuv's message, so the
 * number is never lost; an error with no errno at all yields its message.
 */
export function describeErrno(err: NodeJS.ErrnoException): string {
  const known = err.code === undefined ? undefined : ERRNO[err.code];
  if (known) return `${known[0]}: ${known[1]}`;
  if (typeof err.errno === 'number') {
    // Node reports libuv's negated errno (-2 for ENOENT on Linux).
    const text = getSystemErrorMap().get(err.errno)?.[1] ?? err.code ?? 'unknown error';
    return `${Math.abs(err.errno)}: ${text}`;
  }
  return err.code ?? err.message;
}

/** connect() errnos nginx logs at [error]; every other one is [crit] (ngx_event_connect_peer). */
const ORDINARY_CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'EAGAIN',
  'ECONNRESET',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EHOSTUNREACH',
]);

/** A failed connect() to an upstream server, in nginx's words, and the level nginx logs it at. */
export interface ConnectFailure {
  /** `connect() to unix:/tmp/app.sock failed (2: No such file or directory)`, without the "while …" part. */
  readonly message: string;
  readonly severity: 'crit' | 'error';
}

/** How nginx reports a connect() to `upstream` ("unix:/tmp/app.sock", "127.0.0.1:8000") that failed with `err`. */
export function connectFailure(err: NodeJS.ErrnoException, upstream: string): ConnectFailure {
  const reason = typeof err?.errno === 'number' ? describeErrno(err) : String(err?.message ?? err);
  return {
    message: `connect() to ${upstream} failed (${reason})`,
    severity: ORDINARY_CONNECT_ERRORS.has(err?.code ?? '') ? 'error' : 'crit',
  };
}
