import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { TEMP_FILE_READ_BYTES, TempFile } from './temp-file.js';

export interface ResponseBufferLimits {
  /** proxy_buffers: bytes held in memory. */
  readonly memoryBytes: number;
  /** proxy_max_temp_file_size: bytes held in the temp file; 0 = no temp file. */
  readonly fileBytes: number;
  readonly tempPath: string;
}

export interface ResponseBufferEvents {
  /** Memory and temp file are full: stop reading the upstream until the client catches up. */
  pauseUpstream(): void;
  resumeUpstream(): void;
  /** The response went to a temp file (nginx logs it as a warning). */
  spilled(path: string): void;
  /** The whole response was handed to the client and ended. */
  delivered(): void;
  tempFileFailed(error: NodeJS.ErrnoException): void;
}

/**
 * proxy_buffering on: the upstream's response is read as fast as the upstream sends it,
 * and what the client has not taken yet is held, in memory up to proxy_buffers and then
 * in a temp file up to proxy_max_temp_file_size (ngx_event_pipe). The upstream is done,
 * and its connection free, long before a slow client is. Chunks go to the client at once
 * whenever it keeps up; nothing is held back to fill a buffer.
 *
 * Order: chunks in memory are always older than those in the file, so a chunk goes to
 * memory only while the file holds nothing unread.
 */
export class ResponseBuffer {
  readonly #res: ServerResponse;
  readonly #limits: ResponseBufferLimits;
  readonly #events: ResponseBufferEvents;
  readonly #memory: Buffer[] = [];
  #memoryBytes = 0;
  #file: TempFile | undefined;
  /** The next byte of the file to hand to the client; the file's size is the end of what it holds. */
  #fileRead = 0;
  #upstreamPaused = false;
  #ended = false;
  #trailers: OutgoingHttpHeaders | undefined;
  #disposed = false;

  constructor(res: ServerResponse, limits: ResponseBufferLimits, events: ResponseBufferEvents) {
    this.#res = res;
    this.#limits = limits;
    this.#events = events;
    res.on('drain', this.#pump);
  }

  /** A chunk from the upstream. */
  write(chunk: Buffer): void {
    if (this.#disposed) return;
    if (this.#empty && !this.#res.writableNeedDrain) {
      this.#res.write(chunk);
      return;
    }
    if (this.#fileUnread === 0 && (this.#limits.fileBytes === 0 || this.#memoryFree >= chunk.length)) {
      this.#memory.push(chunk);
      this.#memoryBytes += chunk.length;
    } else if (!this.#appendToFile(chunk)) {
      return;
    }
    if (!this.#upstreamPaused && this.#full) {
      this.#upstreamPaused = true;
      this.#events.pauseUpstream();
    }
  }

  /** The upstream finished: end the client's response once everything held went out. */
  end(trailers: OutgoingHttpHeaders): void {
    this.#ended = true;
    this.#trailers = trailers;
    this.#pump();
  }

  /** The request is over, delivered or not: free the memory and the temp file. */
  dispose(): void {
    this.#disposed = true;
    this.#res.off('drain', this.#pump);
    this.#memory.length = 0;
    this.#file?.close();
  }

  get #fileUnread(): number {
    return (this.#file?.size ?? 0) - this.#fileRead;
  }

  get #empty(): boolean {
    return this.#memoryBytes === 0 && this.#fileUnread === 0;
  }

  get #memoryFree(): number {
    return this.#limits.memoryBytes - this.#memoryBytes;
  }

  /** Without a temp file, memory is the limit; with one, the file is (memory fills first). */
  get #full(): boolean {
    if (this.#limits.fileBytes === 0) return this.#memoryFree <= 0;
    return this.#fileUnread >= this.#limits.fileBytes;
  }

  /** False when the temp file failed (the events were told). */
  #appendToFile(chunk: Buffer): boolean {
    try {
      if (this.#file === undefined) {
        this.#file = TempFile.create(this.#limits.tempPath);
        this.#events.spilled(this.#file.path);
      }
      this.#file.append(chunk);
      return true;
    } catch (error) {
      this.#fail(error as NodeJS.ErrnoException);
      return false;
    }
  }

  /** Hands the client what it can take: memory first, then the file, then the end. */
  readonly #pump = (): void => {
    if (this.#disposed) return;
    while (!this.#res.writableNeedDrain) {
      const chunk = this.#memory.shift();
      if (chunk !== undefined) {
        this.#memoryBytes -= chunk.length;
        this.#res.write(chunk);
      } else if (this.#fileUnread > 0) {
        if (!this.#readBack()) return;
      } else {
        break;
      }
    }
    if (this.#file !== undefined && this.#fileUnread === 0 && this.#fileRead > 0) {
      // Everything written was read back: reuse the file from the start.
      this.#file.rewind();
      this.#fileRead = 0;
    }
    if (this.#upstreamPaused && !this.#full) {
      this.#upstreamPaused = false;
      this.#events.resumeUpstream();
    }
    if (this.#ended && this.#empty) {
      this.#res.off('drain', this.#pump);
      if (Object.keys(this.#trailers ?? {}).length > 0) this.#res.addTrailers(this.#trailers!);
      this.#res.end();
      this.#events.delivered();
    }
  };

  /** Hands the client the next piece of the file; false when the file failed. */
  #readBack(): boolean {
    try {
      const chunk = this.#file!.read(this.#fileRead, Math.min(TEMP_FILE_READ_BYTES, this.#fileUnread));
      if (chunk.length === 0) throw new Error(`temp file ${this.#file!.path} ended before ${this.#file!.size} bytes`);
      this.#fileRead += chunk.length;
      this.#res.write(chunk);
      return true;
    } catch (error) {
      this.#fail(error as NodeJS.ErrnoException);
      return false;
    }
  }

  #fail(error: NodeJS.ErrnoException): void {
    if (!this.#disposed) this.#events.tempFileFailed(error);
  }
}
