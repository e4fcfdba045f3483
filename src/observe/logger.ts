import pino, { type Logger } from 'pino';
import type { AccessLogTarget, LogLevel } from '../config/types.js';

export type { Logger } from 'pino';

/**
 * The error log: JSON lines on stderr, like nginx's error_log (messages keep nginx's
 * wording so that what users search for still matches). Synchronous, so that the line
 * explaining a crash or an exit is never lost.
 */
export function createErrorLog(level: LogLevel, destination: pino.DestinationStream = synchronous(2)): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/**
 * The access log: one JSON line per request. A file gets pino's asynchronous destination
 * (buffered writes off the request path); stdout and stderr stay synchronous so that lines
 * are not lost when the process is killed.
 */
export function createAccessLog(target: AccessLogTarget, onFileError?: (err: NodeJS.ErrnoException) => void): Logger | undefined {
  // No pid or hostname on access lines: the time, pino's level and nginx's fields.
  const options = { base: null, timestamp: pino.stdTimeFunctions.isoTime };
  switch (target.kind) {
    case 'off':
      return undefined;
    case 'stdout':
      return pino(options, synchronous(1));
    case 'stderr':
      return pino(options, synchronous(2));
    case 'file': {
      const destination = pino.destination({ dest: target.path, sync: false, mkdir: true });
      // A file that cannot be (re)opened or written is reported, not a crash of the proxy.
      destination.on('error', (err: NodeJS.ErrnoException) => onFileError?.(err));
      return pino(options, destination);
    }
  }
}

/**
 * SIGUSR1, as nginx's `-s reopen` (logrotate's postrotate): an access log written to a file
 * is reopened by its path, so that after logrotate renamed it the next lines go to a new
 * file, and the renamed one gets none. SonicBoom's reopen() finishes the write under way on
 * the old file first. Returns the path reopened; undefined for stdout, stderr or off.
 */
export function reopenLogFile(logger: Logger | undefined): string | undefined {
  const holder = logger as unknown as Record<symbol, { file?: string | null; reopen?: () => void } | undefined> | undefined;
  const destination = holder?.[pino.symbols.streamSym];
  if (typeof destination?.file !== 'string') return undefined;
  destination.reopen!();
  return destination.file;
}

/**
 * A destination that writes each line before the call returns, as nginx writes its logs.
 * pino.destination(fd) alone is asynchronous (SonicBoom's default): its lines could be
 * lost by a kill, and two loggers on one fd could interleave out of order.
 */
function synchronous(fd: 1 | 2): pino.DestinationStream {
  return pino.destination({ dest: fd, sync: true });
}
