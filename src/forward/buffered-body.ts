import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { TooLarge, UpstreamBody } from './request-body.js';
import { TEMP_FILE_READ_BYTES, TempFile } from './temp-file.js';

export interface BufferingLimits {
  /** client_max_body_size; 0 = unlimited. */
  readonly maxBytes: number;
  /** client_body_buffer_size: a larger body goes to a temp file. */
  readonly memoryBytes: number;
  /** client_body_timeout: the longest wait between two reads from the client. */
  readonly timeoutMs: number;
  readonly tempPath: string;
}

export type BodyReadResult =
  | { readonly kind: 'complete'; readonly body: BufferedBody }
  | TooLarge
  | { readonly kind: 'timeout' }
  | { readonly kind: 'client_closed' }
  | { readonly kind: 'temp_file_failed'; readonly error: NodeJS.ErrnoException };

/**
 * proxy_request_buffering on: reads the whole request body before any upstream is
 * contacted (ngx_http_read_client_request_body), in memory up to client_body_buffer_size
 * and in a temp file beyond, so that a slow client never holds an app worker and the
 * body can be sent again to the next server.
 */
export function readBufferedBody(req: IncomingMessage, limits: BufferingLimits): Promise<BodyReadResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let file: TempFile | undefined;
    let settled = false;

    const settle = (result: BodyReadResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.pause();
      if (result.kind !== 'complete') file?.close();
      resolve(result);
    };
    const timer = setTimeout(() => settle({ kind: 'timeout' }), limits.timeoutMs).unref();

    const onData = (chunk: Buffer): void => {
      timer.refresh();
      received += chunk.length;
      if (limits.maxBytes > 0 && received > limits.maxBytes) {
        settle({ kind: 'too_large', bytes: received });
        return;
      }
      if (file === undefined && received <= limits.memoryBytes) {
        chunks.push(chunk);
        return;
      }
      try {
        if (file === undefined) {
          file = TempFile.create(limits.tempPath);
          for (const held of chunks.splice(0)) file.append(held);
        }
        file.append(chunk);
      } catch (error) {
        settle({ kind: 'temp_file_failed', error: error as NodeJS.ErrnoException });
      }
    };
    const onEnd = (): void => {
      settle({ kind: 'complete', body: new BufferedBody(received, chunks, file) });
    };
    const onClose = (): void => {
      if (!req.complete) settle({ kind: 'client_closed' });
    };

    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
  });
}

/**
 * The file's first `length` bytes as a stream of its own, by positional reads: each
 * attempt gets one, and the file stays open for the next (fs read streams close it).
 */
function readFromFile(file: TempFile, length: number): Readable {
  let position = 0;
  const stream = new Readable({
    highWaterMark: TEMP_FILE_READ_BYTES,
    read: () => {
      if (position === length) {
        stream.push(null);
        return;
      }
      try {
        const chunk = file.read(position, Math.min(TEMP_FILE_READ_BYTES, length - position));
        if (chunk.length === 0) throw new Error(`temp file ${file.path} ended at ${position} of ${length} bytes`);
        position += chunk.length;
        stream.push(chunk);
      } catch (error) {
        stream.destroy(error as Error);
      }
    },
  });
  return stream;
}

/** A request body read in full: the same bytes for every attempt, with a Content-Length. */
export class BufferedBody implements UpstreamBody {
  readonly replayable = true;
  readonly length: number;
  /** In memory: the whole body; undefined when it is in `#file`. */
  readonly #memory: Buffer | undefined;
  readonly #file: TempFile | undefined;
  #current: Readable | undefined;

  constructor(length: number, chunks: Buffer[], file: TempFile | undefined) {
    this.length = length;
    this.#file = file;
    this.#memory = file === undefined ? Buffer.concat(chunks, length) : undefined;
  }

  /** Where the temp file was created, when client_body_buffer_size was exceeded (it has no name now). */
  get tempFilePath(): string | undefined {
    return this.#file?.path;
  }

  open(): Readable | Buffer {
    this.release();
    if (this.#file === undefined) return this.#memory!;
    this.#current = readFromFile(this.#file, this.length);
    return this.#current;
  }

  release(): void {
    this.#current?.destroy();
    this.#current = undefined;
  }

  dispose(): void {
    this.release();
    this.#file?.close();
  }
}
