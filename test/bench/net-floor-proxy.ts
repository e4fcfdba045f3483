/**
 * Not a real proxy: floor-proxy.ts with undici replaced by the leanest connection layer
 * Node allows (`npm run bench -- --floor`), to measure what writing our own upstream
 * client over `net` would gain (issue 4 §3). Plain net sockets to the Unix socket, kept
 * alive without limit, most recent first; responses parsed by node's own native llhttp
 * binding, the parser node:http uses (undici runs llhttp as WebAssembly). Reached through
 * `process.binding`, which is deprecated and internal: acceptable for a measurement,
 * not for the product. Same work as floor-proxy.ts: hop-by-hop headers dropped and
 * nothing else, no timeouts, no retries, no backpressure (fine for these small messages).
 *
 *   node net-floor-proxy.js PORT SOCKET_PATH
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';

interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  [callback: number]: (...args: never[]) => void;
}
interface NativeParserClass {
  new (): NativeParser;
  readonly RESPONSE: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
}
const { HTTPParser } = (process as unknown as { binding(name: string): { HTTPParser: NativeParserClass } }).binding(
  'http_parser',
);

const [portText, socketPath] = process.argv.slice(2);
if (portText === undefined || socketPath === undefined) {
  process.stderr.write('usage: net-floor-proxy.js PORT SOCKET_PATH\n');
  process.exit(2);
}

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

class UpstreamConnection {
  readonly socket = net.connect(socketPath!);
  readonly #parser = new HTTPParser();
  response: ServerResponse | undefined;
  #keepAlive = false;

  constructor() {
    this.#parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
    this.#parser[HTTPParser.kOnHeadersComplete] = (
      _major: number,
      _minor: number,
      headers: string[],
      _method: unknown,
      _url: unknown,
      status: number,
      _message: unknown,
      _upgrade: boolean,
      keepAlive: boolean,
    ) => {
      const out: string[] = [];
      for (let i = 0; i < headers.length; i += 2) {
        if (!HOP.has(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
      }
      this.response!.writeHead(status, out);
      this.#keepAlive = keepAlive;
    };
    this.#parser[HTTPParser.kOnBody] = (chunk: Buffer) => this.response!.write(chunk);
    this.#parser[HTTPParser.kOnMessageComplete] = () => {
      this.response!.end();
      this.response = undefined;
      if (this.#keepAlive) idle.push(this);
      else this.socket.destroy();
    };
    this.socket.on('data', (data: Buffer) => this.#parser.execute(data));
    this.socket.on('error', () => {
      if (this.response === undefined) return;
      if (this.response.headersSent) this.response.destroy();
      else this.response.writeHead(502).end();
    });
  }
}

const idle: UpstreamConnection[] = [];

function forward(req: IncomingMessage, res: ServerResponse): void {
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP.has(raw[i]!.toLowerCase())) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  const connection = idle.pop() ?? new UpstreamConnection();
  connection.response = res;
  connection.socket.write(`${head}\r\n`);
  // The bench's bodies carry Content-Length, passed on above: the bytes follow as they come.
  req.on('data', (chunk: Buffer) => connection.socket.write(chunk));
}

http.createServer(forward).listen(Number(portText), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
