/**
 * The keep-alive race between a proxy and Gunicorn, made deterministic: a real upstream on
 * a Unix socket (python3, one thread per connection) that answers the FIRST request on
 * each connection and then, as soon as the next request's bytes arrive on that same
 * connection, closes it without reading them. Closing a Unix socket with unread data makes
 * Linux report ECONNRESET to the peer (unix_release_sock), and its writes fail with EPIPE:
 * what a proxy sees when it reuses a connection the app has just closed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { pollUntil } from './wait.js';

/** A request the upstream answered. */
export interface AnsweredRequest {
  /** Connection number, from 1, in accept order. */
  readonly conn: number;
  readonly method: string;
  readonly path: string;
  /** Request body bytes received (Content-Length or chunked). */
  readonly bodyLength: number;
}

export interface StaleKeepAliveUpstream {
  readonly path: string;
  /** The server line for the config: "unix:/tmp/…/a.sock". */
  readonly address: string;
  /** Every request answered so far, in order. */
  answered(): AnsweredRequest[];
  /** Connections the upstream closed with the next request unread (the proxy saw a reset). */
  resets(): number[];
  /** Connections the proxy closed first (EOF while the upstream waited for a second request). */
  eofs(): number[];
  /** Resolves once `count` requests have been answered (their records travel over a pipe). */
  waitForAnswered(count: number, timeoutMs?: number): Promise<AnsweredRequest[]>;
  /** Resolves once `count` connections were closed with a request unread. */
  waitForResets(count: number, timeoutMs?: number): Promise<number[]>;
  close(): Promise<void>;
}

/** The response body: names the connection, the method and the request body length. */
export function staleUpstreamBody(conn: number, method: string, bodyLength: number): string {
  return `conn ${conn} ${method} ${bodyLength}\n`;
}

const SCRIPT = String.raw`
import json, select, socket, sys, threading

lock = threading.Lock()

def emit(record):
    with lock:
        sys.stdout.write(json.dumps(record) + '\n')
        sys.stdout.flush()

class Closed(Exception):
    pass

def recv_more(conn, buf):
    data = conn.recv(65536)
    if not data:
        raise Closed()
    return buf + data

def read_request(conn):
    buf = b''
    while b'\r\n\r\n' not in buf:
        buf = recv_more(conn, buf)
    head, _, rest = buf.partition(b'\r\n\r\n')
    lines = head.decode('latin1').split('\r\n')
    method, target = lines[0].split(' ')[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    if 'content-length' in headers:
        length = int(headers['content-length'])
        while len(rest) < length:
            rest = recv_more(conn, rest)
        return method, target, length
    if 'chunked' in headers.get('transfer-encoding', '').lower():
        length = 0
        while True:
            while b'\r\n' not in rest:
                rest = recv_more(conn, rest)
            size_line, _, rest = rest.partition(b'\r\n')
            size = int(size_line.split(b';')[0], 16)
            while len(rest) < size + 2:
                rest = recv_more(conn, rest)
            length += size
            rest = rest[size + 2:]
            if size == 0:
                return method, target, length
    return method, target, 0

def serve(conn, n):
    try:
        method, target, length = read_request(conn)
        body = ('conn %d %s %d\n' % (n, method, length)).encode()
        head = ('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n'
                'X-Conn: %d\r\nConnection: keep-alive\r\n\r\n' % (len(body), n)).encode()
        emit({'conn': n, 'method': method, 'path': target, 'bodyLength': length})
        conn.sendall(head if method == 'HEAD' else head + body)
        # Wait for the next request on this connection (or for the peer to close it) ...
        select.select([conn], [], [])
        try:
            pending = conn.recv(1, socket.MSG_PEEK)
        except OSError:
            pending = b''
        # ... and close without reading it: the unread bytes make the kernel reset the connection.
        emit({'conn': n, 'event': 'reset' if pending else 'eof'})
    except Closed:
        emit({'conn': n, 'event': 'eof'})
    finally:
        conn.close()

server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(64)
emit({'event': 'listening'})
count = 0
while True:
    conn, _ = server.accept()
    count += 1
    threading.Thread(target=serve, args=(conn, count), daemon=True).start()
`;

/** Starts the upstream on `path` and resolves once it listens. */
export async function staleKeepAliveUpstream(path: string): Promise<StaleKeepAliveUpstream> {
  const child: ChildProcess = spawn('python3', ['-c', SCRIPT, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const records: Record<string, unknown>[] = [];
  let out = '';
  let err = '';
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    let newline: number;
    while ((newline = out.indexOf('\n')) >= 0) {
      records.push(JSON.parse(out.slice(0, newline)) as Record<string, unknown>);
      out = out.slice(newline + 1);
    }
  });
  const proc = { alive: () => !exited, describe: () => `python3 upstream stderr:\n${err}` };
  await pollUntil('the python3 upstream to listen', () => (records.some((r) => r.event === 'listening') ? true : undefined), 10_000, proc);

  const answered = (): AnsweredRequest[] =>
    records.filter((r) => r.event === undefined).map((r) => r as unknown as AnsweredRequest);
  const closedWith = (event: string) => (): number[] => records.filter((r) => r.event === event).map((r) => r.conn as number);
  const resets = closedWith('reset');
  return {
    path,
    address: `unix:${path}`,
    answered,
    resets,
    eofs: closedWith('eof'),
    waitForAnswered: (count, timeoutMs = 5_000) =>
      pollUntil(
        () => `${count} answered requests; so far ${JSON.stringify(records)}`,
        () => (answered().length >= count ? answered() : undefined),
        timeoutMs,
        proc,
      ),
    waitForResets: (count, timeoutMs = 5_000) =>
      pollUntil(
        () => `${count} connections closed with a request unread; so far ${JSON.stringify(records)}`,
        () => (resets().length >= count ? resets() : undefined),
        timeoutMs,
        proc,
      ),
    close: async () => {
      if (!exited) child.kill('SIGKILL');
      await exit;
    },
  };
}
