/**
 * The framing the proxy uses for an input, worked out apart from the proxy: llhttp, the
 * parser node's HTTP server (and so the proxy) runs, in the same strict mode and with the
 * proxy's head-size limit, fed the same bytes in this process. It lists every request
 * whose head it read, with its body's length and hash once the body is complete, and the
 * body bytes it delivered either way. The proxy forwards a prefix of these (it stops at
 * the first request it refuses); the upstream must see exactly that prefix, byte for byte,
 * and nothing else. With request buffering on, a request whose body never completed is
 * not forwarded; with it off, it may reach the upstream cut off, with a prefix of the body
 * bytes llhttp delivered.
 *
 * llhttp is reached through node's own HTTPParser, the one node:http's server uses (its
 * public server would hand requests over asynchronously, and drop the complete ones
 * pipelined before a parse error when it resets the stream). It is taken from the internal
 * module node:_http_common, which node:http itself imports, rather than from
 * process.binding('http_parser'): the same class, without that call's DEP0111 warning.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

export interface ReferenceRequest {
  readonly method: string;
  readonly target: string;
  /** The body's length and hash; undefined when the bytes ran out (or went bad) before the body ended. */
  readonly body: { readonly length: number; readonly sha256: string } | undefined;
  /** The body bytes llhttp delivered, complete or not. */
  readonly received: Buffer;
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

const { HTTPParser, methods } = createRequire(import.meta.url)('node:_http_common') as { HTTPParser: ParserBinding; methods: string[] };

/** The requests llhttp reads from `input`, in order, until it refuses something or the bytes run out. */
export function referenceRequests(input: Buffer, maxHeaderSize: number): ReferenceRequest[] {
  const requests: { method: string; target: string; chunks: Buffer[]; complete: boolean }[] = [];
  const parser = new HTTPParser();
  // Lenient flags 0: strict, as node's server is unless insecureHTTPParser is set.
  parser.initialize(HTTPParser.REQUEST, {}, maxHeaderSize, 0);
  let url = '';
  parser[HTTPParser.kOnHeaders] = (_headers: string[], part: string) => {
    url += part;
  };
  parser[HTTPParser.kOnHeadersComplete] = (_major: number, _minor: number, _headers: string[], method: number, part: string | undefined) => {
    requests.push({ method: methods[method] ?? '', target: url + (part ?? ''), chunks: [], complete: false });
    url = '';
    return 0;
  };
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => {
    const request = requests[requests.length - 1]!;
    request.chunks.push(chunk);
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    requests[requests.length - 1]!.complete = true;
  };
  parser[HTTPParser.kOnExecute] = () => {};
  const refused = parser.execute(input) instanceof Error;
  parser.close();
  return requests.map(({ method, target, chunks, complete }, index) => {
    const received = Buffer.concat(chunks);
    return {
      method,
      target,
      body: complete ? { length: received.length, sha256: createHash('sha256').update(received).digest('hex') } : undefined,
      received,
      // Only the last request can be cut by the error; a head refused adds no request.
      bodyRefused: refused && !complete && index === requests.length - 1,
    };
  });
}
