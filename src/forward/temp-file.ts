import { type FileHandle, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';

let sequence = 0;

/**
 * A temp file for a request or response body that does not fit in memory. As nginx's
 * ngx_open_tempfile does, it is created exclusively with mode 0600 and unlinked at once:
 * it has no name while in use, and the kernel frees it when the descriptor closes,
 * whatever happens to the request or the process.
 */
export class TempFile {
  readonly #handle: FileHandle;
  /** The path it was created at, for error messages; it no longer exists. */
  readonly path: string;
  /** Bytes appended so far (including writes still in flight). */
  #size = 0;

  private constructor(handle: FileHandle, path: string) {
    this.#handle = handle;
    this.path = path;
  }

  static async create(directory: string): Promise<TempFile> {
    for (;;) {
      const path = join(directory, `sockproxy-${process.pid}-${++sequence}`);
      let handle: FileHandle;
      try {
        handle = await open(path, 'wx+', 0o600);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw error;
      }
      try {
        await unlink(path);
      } catch (error) {
        await handle.close();
        throw error;
      }
      return new TempFile(handle, path);
    }
  }

  get size(): number {
    return this.#size;
  }

  /** Appends a chunk; appends may overlap, each lands at its own offset. */
  async append(chunk: Buffer): Promise<void> {
    const position = this.#size;
    this.#size += chunk.length;
    let written = 0;
    while (written < chunk.length) {
      const { bytesWritten } = await this.#handle.write(chunk, written, chunk.length - written, position + written);
      written += bytesWritten;
    }
  }

  /** Up to `length` bytes from `position`; fewer only at the end of the file. */
  async read(position: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await this.#handle.read(buffer, 0, length, position);
    return bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
  }

  /**
   * Writes start again at the beginning, once everything written was read back and no
   * write is in flight; what lies beyond is stale and never read.
   */
  rewind(): void {
    this.#size = 0;
  }

  close(): void {
    this.#handle.close().catch(() => {
      // Already closed, or the descriptor is gone with its file: nothing left to free.
    });
  }
}
