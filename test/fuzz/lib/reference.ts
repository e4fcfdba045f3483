/**
 * The framing the proxy uses for an input, worked out apart from the proxy: llhttp, the
 * parser node's HTTP server (and so the proxy) runs, in the same strict mode and with the
 * proxy's head-size limit, fed the same bytes in this process. It lists every request
 * whose head it read, with its body's length and hash once the body is complete. The proxy
 * forwards a prefix of these (it stops at the first request it refuses, and a request
 * whose body never completed is not forwarded: request buffering is on); the upstream
 * must see exactly that prefix, byte for byte, and nothing else.
 *
 * llhttp is reached through process.binding('http_parser'), node's own binding (its
 * public server would hand requests over asynchronously, and drop the complete ones
 * pipelined before a parse error when it resets the stream).
 */
import { createHash, type Hash } from 'node:crypto';

export interface ReferenceRequest {
  readonly method: string;
  readonly target: string;
  /** The body's length and hash; undefined when the bytes ran out (or went bad) before the body ended. */
  readonly body: { readonly length: number; readonly sha256: string } | undefined;
  /** llhttp refused a byte of the body after the head (a chunk size, a missing CRLF): nginx's 400 "client sent invalid chunked body". */
  readonly bodyRefused: boolean;
}

interface ParserBinding {
  new (): Parser;
  readonly REQUEST: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kOnExecute: number;
}
interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error;
  close(): void;
  [callback: number]: unknown;
}

// Node prints a deprecation warning (DEP0111) for process.binding once; the harness is not a library.
const binding = (process as unknown as { binding(name: string): { HTTPParser: ParserBinding; methods: string[] } }).binding('http_parser');
const { HTTPParser, methods } = binding;

/** The requests llhttp reads from `input`, in order, until it refuses something or the bytes run out. */
export function referenceRequests(input: Buffer, maxHeaderSize: number): ReferenceRequest[] {
  const requests: { method: string; target: string; hash: Hash; length: number; complete: boolean }[] = [];
  const parser = new HTTPParser();
  // Lenient flags 0: strict, as node's server is unless insecureHTTPParser is set.
  parser.initialize(HTTPParser.REQUEST, {}, maxHeaderSize, 0);
  let url = '';
  parser[HTTPParser.kOnHeaders] = (_headers: string[], part: string) => {
    url += part;
  };
  parser[HTTPParser.kOnHeadersComplete] = (_major: number, _minor: number, _headers: string[], method: number, part: string | undefined) => {
    requests.push({ method: methods[method] ?? '', target: url + (part ?? ''), hash: createHash('sha256'), length: 0, complete: false });
    url = '';
    return 0;
  };
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => {
    const request = requests[requests.length - 1]!;
    request.hash.update(chunk);
    request.length += chunk.length;
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    requests[requests.length - 1]!.complete = true;
  };
  parser[HTTPParser.kOnExecute] = () => {};
  const refused = parser.execute(input) instanceof Error;
  parser.close();
  return requests.map(({ method, target, hash, length, complete }, index) => ({
    method,
    target,
    body: complete ? { length, sha256: hash.digest('hex') } : undefined,
    // Only the last request can be cut by the error; a head refused adds no request.
    bodyRefused: refused && !complete && index === requests.length - 1,
  }));
}
