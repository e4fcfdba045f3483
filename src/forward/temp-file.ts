import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

let sequence = 0;

/** The most read back from a temp file at a time, for a request attempt or a slow client: one socket write's worth. */
export const TEMP_FILE_READ_BYTES = 64 * 1024;

/**
 * A temp file for a request or response body that does not fit in memory. As nginx's
 * ngx_open_tempfile does, it is created exclusively with mode 0600 and unlinked at once:
 * it has no name while in use, and the kernel frees it when the descriptor closes,
 * whatever happens to the request or the process.
 *
 * Its I/O is synchronous, as nginx's is: a write or read of one chunk goes to the page
 * cache in microseconds, far less than a round trip through libuv's thread pool, and a
 * chunk is at most one socket read (64 KiB).
 */
export class TempFile {
  readonly #fd: number;
  /** The path it was created at, for error messages; it no longer exists. */
  readonly path: string;
  #size = 0;

  private constructor(fd: number, path: string) {
    this.#fd = fd;
    this.path = path;
  }

  /** Throws the fs error (ENOENT, EACCES, ENOSPC…) when the file cannot be made. */
  static create(directory: string): TempFile {
    for (;;) {
      const path = join(directory, `sockproxy-${process.pid}-${++sequence}`);
      let fd: number;
      try {
        fd = openSync(path, 'wx+', 0o600);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw error;
      }
      try {
        unlinkSync(path);
      } catch (error) {
        closeSync(fd);
        throw error;
      }
      return new TempFile(fd, path);
    }
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  append(chunk: Buffer): void {
    let written = 0;
    while (written < chunk.length) {
      written += writeSync(this.#fd, chunk, written, chunk.length - written, this.#size + written);
    }
    this.#size += chunk.length;
  }

  /** Up to `length` bytes from `position`; fewer only at the end of the file. */
  read(position: number, length: number): Buffer {
    const buffer = Buffer.allocUnsafe(length);
    const bytesRead = readSync(this.#fd, buffer, 0, length, position);
    return bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
  }

  /** Writes start again at the beginning, once everything written was read back; what lies beyond is stale. */
  rewind(): void {
    this.#size = 0;
  }

  close(): void {
    try {
      closeSync(this.#fd);
    } catch {
      // Already closed: nothing left to free.
    }
  }
}
