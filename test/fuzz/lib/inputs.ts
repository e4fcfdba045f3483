/**
 * The fuzz inputs (issue 8 §3): valid requests, mutated. Byte-level mutations (flip,
 * insert, delete, truncate) find what a parser was never told about; header-level ones
 * (a header line duplicated, removed, or spliced in from a dictionary of known request
 * smuggling tricks) reach the framing decisions that byte noise rarely does. Everything
 * comes from one seeded generator, so that an input is reproduced from the seed and its
 * index alone.
 */
import { seededRandom } from '../../helpers/seeded-random.js';

const HOST = 'Host: fuzz.test\r\n';

/** The valid requests every input starts from. */
export const SEEDS: readonly string[] = [
  `GET /a?q=1 HTTP/1.1\r\n${HOST}User-Agent: fuzz\r\n\r\n`,
  `POST /post HTTP/1.1\r\n${HOST}Content-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello`,
  `POST /chunked HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`,
  `GET /first HTTP/1.1\r\n${HOST}\r\nPOST /second HTTP/1.1\r\n${HOST}Content-Length: 3\r\n\r\nabc`,
  `POST /one HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /two HTTP/1.1\r\n${HOST}\r\n`,
  `GET /old HTTP/1.0\r\n${HOST}\r\n`,
  `PUT /put HTTP/1.1\r\n${HOST}Expect: 100-continue\r\nContent-Length: 4\r\n\r\nbody`,
  `DELETE /x HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`,
];

/** Header lines that have smuggled requests past some proxy, or split one in two. */
export const HEADER_TRICKS: readonly string[] = [
  'Transfer-Encoding: chunked',
  'Transfer-Encoding : chunked',
  'Transfer-Encoding:\tchunked',
  'Transfer-Encoding: Chunked',
  'TRANSFER-ENCODING: CHUNKED',
  'Transfer-Encoding: chunked, identity',
  'Transfer-Encoding: identity, chunked',
  'Transfer-Encoding: chunked, chunked',
  'Transfer-Encoding: \x0bchunked',
  'Transfer-Encoding: chunked\x0b',
  'Transfer-Encoding: \x0cchunked',
  'Transfer-Encoding: xchunked',
  'Transfer-Encoding: chunk',
  'Transfer-Encoding: "chunked"',
  'Transfer-Encoding:\r\n chunked',
  'Transfer-Encoding\r\n: chunked',
  'Transfer_Encoding: chunked',
  ' Transfer-Encoding: chunked',
  'X: y\r\nTransfer-Encoding: chunked',
  'Transfer-Encoding: gzip',
  'Content-Length: 0',
  'Content-Length: 5',
  'Content-Length: 50',
  'Content-Length: +5',
  'Content-Length: -5',
  'Content-Length: 0x5',
  'Content-Length: 5 5',
  'Content-Length: 5, 5',
  'Content-Length: 05',
  'Content-Length:5',
  'Content-Length : 5',
  'Content-Length: 5\x0b',
  'Content-Length: 99999999999999999999999',
  'Content-Length: 18446744073709551616',
  'Content-Length: 5\r\nContent-Length: 6',
  'X-Fold: a\r\n b',
  'X-Fold: a\r\n\tb',
  'X-CR: a\rb',
  'X-LF: a\nb',
  'X-NUL: a\x00b',
  'X-DEL: a\x7fb',
  'X-High: caf\xe9',
  'X Space: b',
  ': empty-name',
  'Host: other.test',
  'Host: fuzz.test',
  'Host:',
  'Expect: 100-continue',
  'Expect: 100-Continue',
  'Connection: close',
  'Connection: keep-alive',
  'Connection: Transfer-Encoding',
  'Connection: Content-Length',
  'Connection: Upgrade\r\nUpgrade: websocket',
  'Upgrade: h2c',
  'Proxy-Connection: keep-alive',
  'TE: trailers',
  'Trailer: X-T',
  'Keep-Alive: timeout=1',
  'X-Request-Id: fuzz-request',
  'X-Request-Id: a\r\nX-Request-Id: b',
  'X-Forwarded-For: 10.0.0.1',
  `X-Long: ${'a'.repeat(9000)}`,
  `X-Longish: ${'b'.repeat(7000)}`,
];

/** Pieces spliced anywhere: chunk-size tricks, line ends, request lines, a whole second request. */
export const BYTE_TRICKS: readonly string[] = [
  '0\r\n\r\n',
  'ffffffffffffffffff\r\n',
  '10000000000000000\r\n',
  '5;ext=1\r\nhello\r\n',
  '5;a="b;c"\r\nhello\r\n',
  '5 \r\nhello\r\n',
  ' 5\r\nhello\r\n',
  '-5\r\n',
  '0x5\r\n',
  '0\r\nX-Trailer: t\r\n\r\n',
  '0\r\nContent-Length: 99\r\n\r\n',
  '\r\n',
  '\n',
  '\r',
  '\r\n\r\n',
  '\x00',
  '\t',
  ' ',
  'GET /smuggled HTTP/1.1\r\nHost: fuzz.test\r\n\r\n',
  'POST /smuggled HTTP/1.1\r\nHost: fuzz.test\r\nContent-Length: 10\r\n\r\n',
  'GET http://other.test/ HTTP/1.1',
  'GET http://fuzz.test/abs HTTP/1.1',
  'GET * HTTP/1.1',
  ' HTTP/1.0',
  ' HTTP/1.2',
  ' HTTP/2.0',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  'CONNECT fuzz.test:443 HTTP/1.1\r\n',
  '%00',
  '/../../etc/passwd',
];

/** Bytes worth inserting one at a time: the ones parsers treat specially. */
const SPECIAL_BYTES = [0x0d, 0x0a, 0x00, 0x09, 0x20, 0x3a, 0x2c, 0x3b, 0x0b, 0x0c, 0x7f, 0xff, 0x30, 0x35, 0x66, 0x22];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function int(random: () => number, below: number): number {
  return Math.floor(random() * below);
}

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Where each line of the head starts (after the request line), and where the head ends. */
function headerLineStarts(input: Buffer): number[] {
  const end = input.indexOf('\r\n\r\n');
  const stop = end < 0 ? input.length : end + 2;
  const starts: number[] = [];
  for (let at = input.indexOf('\r\n'); at >= 0 && at + 2 <= stop; at = input.indexOf('\r\n', at + 2)) starts.push(at + 2);
  return starts;
}

type Mutation = (input: Buffer, random: () => number) => Buffer;

const MUTATIONS: readonly Mutation[] = [
  // A bit flipped.
  (input, random) => {
    if (input.length === 0) return input;
    const out = Buffer.from(input);
    const at = int(random, out.length);
    out[at] = out[at]! ^ (1 << int(random, 8));
    return out;
  },
  // A byte inserted: a special one or any.
  (input, random) => {
    const at = int(random, input.length + 1);
    const byte = random() < 0.7 ? pick(random, SPECIAL_BYTES) : int(random, 256);
    return Buffer.concat([input.subarray(0, at), Buffer.from([byte]), input.subarray(at)]);
  },
  // Bytes removed.
  (input, random) => {
    const at = int(random, input.length + 1);
    const count = 1 + int(random, random() < 0.8 ? 2 : 16);
    return Buffer.concat([input.subarray(0, at), input.subarray(at + count)]);
  },
  // Cut short.
  (input, random) => input.subarray(0, int(random, input.length + 1)),
  // A header line repeated.
  (input, random) => {
    const starts = headerLineStarts(input);
    if (starts.length < 2) return input;
    const i = int(random, starts.length - 1);
    const line = input.subarray(starts[i]!, starts[i + 1]!);
    return Buffer.concat([input.subarray(0, starts[i + 1]!), line, input.subarray(starts[i + 1]!)]);
  },
  // A header line removed.
  (input, random) => {
    const starts = headerLineStarts(input);
    if (starts.length < 2) return input;
    const i = int(random, starts.length - 1);
    return Buffer.concat([input.subarray(0, starts[i]!), input.subarray(starts[i + 1]!)]);
  },
  // A smuggling trick spliced in as a header line.
  (input, random) => {
    const starts = headerLineStarts(input);
    const at = starts.length === 0 ? input.length : pick(random, starts);
    return Buffer.concat([input.subarray(0, at), latin1(`${pick(random, HEADER_TRICKS)}\r\n`), input.subarray(at)]);
  },
  // A byte-level trick spliced in anywhere, half the time in place of what was there.
  (input, random) => {
    const at = int(random, input.length + 1);
    const cut = random() < 0.5 ? int(random, 8) : 0;
    return Buffer.concat([input.subarray(0, at), latin1(pick(random, BYTE_TRICKS)), input.subarray(at + cut)]);
  },
  // A second request appended (pipelined, or hidden in the first one's body).
  (input, random) => Buffer.concat([input, latin1(pick(random, [SEEDS[0]!, SEEDS[1]!, BYTE_TRICKS[18]!, BYTE_TRICKS[19]!]))]),
];

/** Input number `index` of the run seeded `seed`: a seed request with one to four mutations. */
export function fuzzInput(seed: number, index: number): Buffer {
  // Each input from its own stream, so that input N is the same whatever ran before it.
  const random = seededRandom((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  let input = latin1(pick(random, SEEDS));
  const count = 1 + int(random, 4);
  for (let i = 0; i < count; i++) input = pick(random, MUTATIONS)(input, random);
  return input;
}
