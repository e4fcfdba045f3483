/**
 * The contenders, each one process (or one worker) on the server core, in front of the
 * same upstream process:
 *
 *   direct                 the upstream itself over TCP: the ceiling
 *   sockproxy              to the upstream's Unix socket, default settings, access log off
 *   sockproxy → TCP        the same, to the upstream's TCP port
 *   sockproxy, access log  the first, with its access log on, to a file
 *   sockproxy, no req. buf the first with `proxy: {request_buffering: off}` (POST only)
 *   sockproxy, keepalive 64 the first with `upstream: {keepalive: 64}` (13-byte GET only):
 *                          no upstream connection churn at 50 clients
 *   sockproxy, workers: 2  the first with `workers: 2`: a primary and two workers (the
 *                          all-cores scenario only, where the servers are not pinned)
 *   http-proxy             http-proxy 1.18 with a keep-alive agent, to the Unix socket
 *   nginx                  nginx to the Unix socket, HTTP/1.1 and `keepalive 32`,
 *                          configured as sockproxy's defaults are (see nginxConfig)
 *   node floor (--floor)   a bare node:http + undici pass-through, the least a Node
 *                          proxy can do per request (test/bench/floor-proxy.ts)
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, ROOT, spawnPinned, stopChild, waitReady, which } from './util.js';

export interface Environment {
  readonly workDir: string;
  readonly socketPath: string;
  readonly upstreamPort: number;
  readonly upstreamPid: number;
  readonly serverCpus: string | undefined;
}

export interface Running {
  readonly pid: number;
  readonly port: number;
  /** Whether the process is still there. */
  alive(): boolean;
  /** The last lines of its stderr / error log, for a failure report. */
  logTail(): string;
  stop(): Promise<void>;
}

export interface Contender {
  readonly id: string;
  readonly label: string;
  /** Why it cannot run here (nginx not installed), or undefined. */
  readonly unavailable?: string;
  start(env: Environment): Promise<Running>;
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

async function startProcess(
  env: Environment,
  id: string,
  command: string,
  args: string[],
  port: number,
  errorLog?: string,
): Promise<Running> {
  const stderrFile = join(env.workDir, `${id}.stderr.log`);
  const fd = openSync(stderrFile, 'w');
  let child: ChildProcess;
  try {
    // stdout and stderr to a file, as a daemon's would: nothing the bench has to read fast enough.
    child = spawnPinned(env.serverCpus, command, args, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const running: Running = {
    pid: child.pid!,
    port,
    alive: () => child.exitCode === null && child.signalCode === null,
    logTail: () => [tail(stderrFile), errorLog === undefined ? '' : tail(errorLog)].filter(Boolean).join('\n'),
    stop: () => stopChild(child),
  };
  try {
    await waitReady(port, child, id);
  } catch (err) {
    await running.stop();
    throw new Error(`${(err as Error).message}\n${running.logTail()}`);
  }
  return running;
}

export interface SockproxyOptions {
  /** The server line; default the upstream's Unix socket. */
  readonly upstream?: string;
  /** More keys of `upstream:`, e.g. "keepalive: 64". */
  readonly upstreamKeys?: readonly string[];
  /** YAML after `upstream:` (default: the access log off). */
  readonly yaml?: string;
  /** Node flags, e.g. --cpu-prof. */
  readonly nodeArgs?: readonly string[];
}

export function sockproxy(id: string, label: string, extra: (env: Environment) => SockproxyOptions): Contender {
  return {
    id,
    label,
    async start(env) {
      const port = await freePort();
      const options = extra(env);
      const server = options.upstream ?? `unix:${env.socketPath}`;
      const config = join(env.workDir, `${id}.yaml`);
      writeFileSync(
        config,
        [
          `listen: 127.0.0.1:${port}`,
          'upstream:',
          '  servers:',
          `    - ${server}`,
          ...(options.upstreamKeys ?? []).map((line) => `  ${line}`),
          options.yaml ?? 'log:\n  access: "off"',
          '',
        ].join('\n'),
      );
      const argv = [...(options.nodeArgs ?? []), join(ROOT, 'dist/proxy.js'), '--config', config];
      return startProcess(env, id, process.execPath, argv, port);
    },
  };
}

export const direct: Contender = {
  id: 'direct',
  label: 'upstream direct (ceiling)',
  async start(env) {
    return {
      pid: env.upstreamPid,
      port: env.upstreamPort,
      alive: () => true,
      logTail: () => '',
      stop: async () => {},
    };
  },
};

export const sockproxyUnix = sockproxy('sockproxy', 'sockproxy → unix', () => ({}));
export const sockproxyTcp = sockproxy('sockproxy-tcp', 'sockproxy → TCP', (env) => ({
  upstream: `127.0.0.1:${env.upstreamPort}`,
}));
export const sockproxyAccessLog = sockproxy('sockproxy-log', 'sockproxy → unix, access log to a file', (env) => ({
  yaml: `log:\n  access: ${JSON.stringify(join(env.workDir, 'access.log'))}`,
}));
export const sockproxyNoRequestBuffering = sockproxy(
  'sockproxy-nobuf',
  'sockproxy → unix, request_buffering off',
  () => ({ yaml: 'proxy:\n  request_buffering: off\nlog:\n  access: "off"' }),
);

/**
 * Not a default: with 50 clients and `keepalive 32`, about a quarter of the requests open
 * a new upstream connection (more than 32 go idle at once between bursts, and the surplus
 * is closed, as nginx does). This row shows what the proxy costs without that churn.
 */
export const sockproxyKeepalive64 = sockproxy('sockproxy-ka64', 'sockproxy → unix, keepalive 64', () => ({
  upstreamKeys: ['keepalive: 64'],
}));

/**
 * nginx's `worker_processes 2`: two workers share the listener. Its CPU per request counts
 * the primary and both workers (the bench sums the process tree).
 */
export const sockproxyWorkers2 = sockproxy('sockproxy-w2', 'sockproxy → unix, workers: 2', () => ({
  yaml: 'workers: 2\nlog:\n  access: "off"',
}));

/** A contender that is one Node script of the bench's own, started as `script PORT SOCKET`. */
function nodeScript(id: string, label: string, file: string): Contender {
  return {
    id,
    label,
    async start(env) {
      const port = await freePort();
      const script = join(ROOT, 'dist-bench', file);
      return startProcess(env, id, process.execPath, [script, String(port), env.socketPath], port);
    },
  };
}

export const httpProxy = nodeScript('http-proxy', 'http-proxy → unix', 'http-proxy-server.js');

/** Only with --floor: the least a Node proxy can do per request (test/bench/floor-proxy.ts). */
export const nodeFloor = nodeScript('node-floor', 'minimal node:http + undici (floor, not a proxy)', 'floor-proxy.js');

/** Only with --floor: the same over plain net sockets and node's native parser (test/bench/net-floor-proxy.ts). */
export const netFloor = nodeScript('net-floor', 'minimal node:http + net (floor, not a proxy)', 'net-floor-proxy.js');

export function findNginx(): string | undefined {
  return which('nginx', ['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin']);
}

export function nginxVersion(nginx: string | undefined): string | undefined {
  if (nginx === undefined) return undefined;
  // nginx -v writes "nginx version: nginx/1.22.1" to stderr.
  const result = spawnSync(nginx, ['-v'], { encoding: 'utf8' });
  return `${result.stderr ?? ''}${result.stdout ?? ''}`.replace('nginx version:', '').trim() || undefined;
}

/**
 * nginx set up as sockproxy's defaults are, so the two do the same work: one worker
 * (master_process off, in the foreground, as root with a temp prefix), HTTP/1.1 with
 * `keepalive 32` and `keepalive_requests 1000` to the app, request and response
 * buffering on with the same sizes (client_body_buffer_size 16k, so a 64 KiB body goes
 * to a temp file in both; proxy_buffer_size 8k; proxy_buffers 8 8k = 64k), 1m body limit,
 * the same request headers sockproxy sets by default (Host from the client,
 * X-Forwarded-For/-Proto/-Host, X-Request-Id, also returned to the client), access log
 * off, error log at warn (sockproxy's default level, info, also writes the warn-level
 * "buffered to a temporary file" lines). Client keep-alive is not capped at 1000 requests
 * per connection, because Node's server (and so sockproxy) does not cap it.
 */
export function nginxConfig(prefix: string, port: number, socketPath: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events {
  worker_connections 8192;
}
http {
  access_log off;
  client_body_temp_path ${prefix}/client_body_temp;
  proxy_temp_path ${prefix}/proxy_temp;
  fastcgi_temp_path ${prefix}/fastcgi_temp;
  uwsgi_temp_path ${prefix}/uwsgi_temp;
  scgi_temp_path ${prefix}/scgi_temp;
  client_max_body_size 1m;
  client_body_buffer_size 16k;
  keepalive_requests 1000000;
  upstream app_server {
    server unix:${socketPath};
    keepalive 32;
    keepalive_requests 1000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app_server;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Request-Id $request_id;
      add_header X-Request-Id $request_id always;
      proxy_buffering on;
      proxy_request_buffering on;
      proxy_buffer_size 8k;
      proxy_buffers 8 8k;
    }
  }
}
`;
}

export function nginx(binary: string | undefined): Contender {
  return {
    id: 'nginx',
    label: 'nginx → unix',
    ...(binary === undefined ? { unavailable: 'nginx is not installed (apt-get install nginx-light adds it)' } : {}),
    async start(env) {
      const port = await freePort();
      const prefix = join(env.workDir, 'nginx');
      mkdirSync(prefix, { recursive: true });
      const conf = join(prefix, 'nginx.conf');
      writeFileSync(conf, nginxConfig(prefix, port, env.socketPath));
      return startProcess(
        env,
        'nginx',
        binary!,
        ['-p', `${prefix}/`, '-c', conf, '-e', join(prefix, 'error.log')],
        port,
        join(prefix, 'error.log'),
      );
    },
  };
}
