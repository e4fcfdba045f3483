import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, posix } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  execForm,
  flag,
  healthcheck,
  last,
  readDockerfile,
  readYaml,
  upstreamConfig,
} from '../docker/files.js';
import { type AppProcess, startApp } from '../helpers/app-process.js';
import { killAll, type Running } from '../helpers/node-process.js';
import { repoPath } from '../helpers/paths.js';
import { runProxy, startProxyWithConfig } from '../helpers/proxy-process.js';
import { freePort, makeTempDir } from '../helpers/temp.js';

/**
 * docker/: the Dockerfile, docker-compose.yml and upstream.yaml agree with each other
 * (volume, socket path, port, commands), checked without an engine; then the containers'
 * own commands, HEALTHCHECKs included, run on the host with a temp dir in place of the
 * volume. test/docker/e2e.sh runs the same files on a real engine.
 */

interface ComposeService {
  build: { context: string; dockerfile: string; target: string; args: Record<string, string> };
  image: string;
  volumes: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}


const dockerfile = readDockerfile();
const compose = readYaml<ComposeFile>('docker/docker-compose.yml');
const upstream = upstreamConfig();
const app = dockerfile.inherited('app');
const proxy = dockerfile.inherited('proxy');
const appCommand = execForm(last(app, 'CMD')!);
const proxyCommand = execForm(last(proxy, 'CMD')!);
const configPath = flag(proxyCommand, '--config')!;
const socketDir = posix.dirname(upstream.socketPath);

/** `${VAR:-default}` as compose substitutes it with VAR unset. */
function withDefaults(text: string): string {
  return text.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
}

/** "15s" → 15. */
function seconds(duration: string | undefined): number {
  const match = /^(\d+)s$/.exec(duration ?? '');
  if (!match) throw new Error(`not a duration in seconds: ${duration}`);
  return Number(match[1]);
}

describe('docker/: Dockerfile, docker-compose.yml and upstream.yaml agree', () => {
  it('the base image is a build argument defaulting to node:20-slim, used by every stage not built on another', () => {
    expect(dockerfile.globalArgs.get('BASE_IMAGE')).toBe('node:20-slim');
    const names = dockerfile.stages.map((stage) => stage.name);
    for (const stage of dockerfile.stages) {
      if (!names.includes(stage.from)) expect(stage.from, `stage ${stage.name}`).toBe('${BASE_IMAGE}');
    }
    for (const service of Object.values(compose.services)) {
      expect(withDefaults(service.build.args.BASE_IMAGE!)).toBe('node:20-slim');
      expect(service.build.args.BASE_IMAGE).toBe('${BASE_IMAGE:-node:20-slim}');
    }
  });

  it('multi-stage: the runtime has dist/ and the production dependencies only, the proxy is the default target', () => {
    expect(dockerfile.stages.at(-1)!.name).toBe('proxy');
    const build = dockerfile.stage('build').instructions;
    expect(build.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n')).toMatch(/npm prune --omit=dev/);
    const copied = dockerfile
      .stage('runtime')
      .instructions.filter((i) => i.keyword === 'COPY')
      .map((i) => i.args);
    expect(copied).toEqual([
      '--from=build /src/package.json ./',
      '--from=build /src/node_modules ./node_modules',
      '--from=build /src/dist ./dist',
    ]);
    expect(last(app, 'ENV')).toBe('NODE_ENV=production');
  });

  it('every file the build copies from the context exists and is not in .dockerignore', () => {
    const ignored = readFileSync(repoPath('.dockerignore'), 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'));
    const sources = dockerfile.stages
      .flatMap((stage) => stage.instructions)
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources).toEqual(['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'docker/upstream.yaml']);
    for (const source of sources) {
      expect(existsSync(repoPath(source)), source).toBe(true);
      expect(ignored.filter((pattern) => source === pattern || source.startsWith(`${pattern}/`)), source).toEqual([]);
    }
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git']));
  });

  it('both images run as the same non-root uid, which owns the socket directory, and stop on SIGTERM', () => {
    for (const [name, image] of [['app', app], ['proxy', proxy]] as const) {
      expect(last(image, 'USER'), name).toBe('1000:1000');
      expect(last(image, 'STOPSIGNAL'), name).toBe('SIGTERM');
    }
    const runs = dockerfile.stage('runtime').instructions.filter((i) => i.keyword === 'RUN');
    expect(runs.map((i) => i.args)).toContain(`mkdir -p ${socketDir} && chown 1000:1000 ${socketDir}`);
  });

  it("the app binds the socket the proxy's upstream names, 0770, and stops gracefully in less than compose waits", () => {
    expect(appCommand.slice(0, 2)).toEqual(['node', 'dist/app.js']);
    expect(flag(appCommand, '--bind')).toBe(`unix:${upstream.socketPath}`);
    expect(flag(appCommand, '--umask')).toBe('007');
    const graceful = Number(flag(appCommand, '--graceful-timeout'));
    expect(seconds(compose.services.app!.stop_grace_period)).toBeGreaterThan(graceful);
  });

  it('the proxy runs with the configuration compose mounts from docker/upstream.yaml, also baked into the image', () => {
    expect(proxyCommand).toEqual(['node', 'dist/proxy.js', '--config', configPath]);
    expect(last(proxy, 'COPY')).toBe(`docker/upstream.yaml ${configPath}`);
    expect(compose.services.proxy!.volumes).toContain(`./upstream.yaml:${configPath}:ro`);
    expect(seconds(compose.services.proxy!.stop_grace_period)).toBeGreaterThan(upstream.shutdownSeconds);
  });

  it('both services mount one named volume where the socket is; the proxy publishes its listen port on loopback', () => {
    const mounts = (service: ComposeService): string[] =>
      service.volumes.filter((volume) => volume.split(':')[1] === socketDir).map((volume) => volume.split(':')[0]!);
    const [volume] = mounts(compose.services.app!);
    expect(volume).toBeDefined();
    expect(mounts(compose.services.proxy!)).toEqual([volume]);
    expect(Object.keys(compose.volumes)).toEqual([volume]);

    expect(last(proxy, 'EXPOSE')).toBe(String(upstream.port));
    expect(compose.services.proxy!.ports!.map(withDefaults)).toEqual([`127.0.0.1:8080:${upstream.port}`]);
  });

  it('compose builds each service from its target and starts the proxy once the app is healthy', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['app', 'proxy']);
    for (const [name, service] of Object.entries(compose.services)) {
      expect(service.build).toMatchObject({ context: '..', dockerfile: 'docker/Dockerfile', target: name });
      expect(dockerfile.stage(name).name).toBe(name);
    }
    expect(compose.services.proxy!.depends_on).toEqual({ app: { condition: 'service_healthy' } });
  });

  it("the HEALTHCHECKs look at the app's socket and the proxy's listener", () => {
    const appCheck = healthcheck(last(app, 'HEALTHCHECK')!);
    const proxyCheck = healthcheck(last(proxy, 'HEALTHCHECK')!);
    expect(appCheck.command.join(' ')).toContain(`'${upstream.socketPath}'`);
    expect(proxyCheck.command.join(' ')).toContain(`'http://127.0.0.1:${upstream.port}/'`);
    for (const check of [appCheck, proxyCheck]) {
      expect(check.command.slice(0, 2)).toEqual(['node', '-e']);
      expect(check.options).toMatchObject({ interval: '5s', timeout: '3s' });
    }
  });

  it('docker/upstream.yaml passes sockproxy -t', async () => {
    const result = await runProxy(['-t', '--config', repoPath('docker/upstream.yaml')]);
    expect(result.stderr).toContain('test is successful');
    expect(result.code).toBe(0);
  });
});

/** A HEALTHCHECK command, run on the host: its exit code. */
function runCheck(command: readonly string[]): Promise<number | null> {
  const [program, ...args] = command;
  expect(program).toBe('node');
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe("the containers' commands on the host, a temp dir in place of the volume", () => {
  const tmp = makeTempDir();
  /** A path of the container's volume, in the temp dir. */
  const onHost = (text: string): string => text.split(socketDir).join(tmp.dir);
  const agent = new Agent({ pipelining: 0 });
  let appProcess: AppProcess;
  let proxyProcess: Running;
  let port: number;
  const appArgs = appCommand.slice(2).map(onHost);
  const appCheck = healthcheck(last(app, 'HEALTHCHECK')!).command.map(onHost);
  let proxyCheck: string[];

  async function get(path: string): Promise<{ status: number; text: string }> {
    const res = await request(`http://127.0.0.1:${port}${path}`, { dispatcher: agent });
    return { status: res.statusCode, text: await res.body.text() };
  }

  beforeAll(async () => {
    // The image's configuration with the volume's path, and a free port: 8080 may be taken here.
    port = await freePort();
    const config = tmp.path('sockproxy.yaml');
    const listen = `listen: ${upstream.port}\n`;
    expect(upstream.text).toContain(listen);
    writeFileSync(config, onHost(upstream.text).replace(listen, `listen: 127.0.0.1:${port}\n`));
    proxyCheck = healthcheck(last(proxy, 'HEALTHCHECK')!).command.map((arg) =>
      arg.replace(`127.0.0.1:${upstream.port}`, `127.0.0.1:${port}`),
    );
    appProcess = await startApp(appArgs);
    proxyProcess = await startProxyWithConfig(config);
  });

  afterAll(async () => {
    await killAll();
    await agent.close();
    tmp.remove();
  });

  it("the app's socket is 0770 in the volume, and both HEALTHCHECKs pass", async () => {
    const socket = statSync(onHost(upstream.socketPath));
    expect(socket.isSocket()).toBe(true);
    expect(socket.mode & 0o777).toBe(0o770);
    expect(dirname(onHost(upstream.socketPath))).toBe(tmp.dir);
    expect(await runCheck(appCheck)).toBe(0);
    expect(await runCheck(proxyCheck)).toBe(0);
  });

  it('GET / through the proxy is answered by the app over the socket', async () => {
    expect(await get('/')).toEqual({ status: 200, text: `Hello from sockproxy sample app (pid ${appProcess.pid})\n` });
    const access = await proxyProcess.waitForAccess((line) => line.request_uri === '/');
    expect(access).toMatchObject({ status: 200, upstream_addr: `unix:${onHost(upstream.socketPath)}` });
  });

  it("the app stopped: its HEALTHCHECK fails, the proxy's passes (it answers 502) and logs why", async () => {
    appProcess.child.kill('SIGTERM');
    expect(await appProcess.waitForExit()).toEqual({ code: 0, signal: null });
    expect(await runCheck(appCheck)).toBe(1);
    expect((await get('/down')).status).toBe(502);
    expect(await runCheck(proxyCheck)).toBe(0);
    const line = await proxyProcess.waitForLog((entry) => String(entry.msg).includes('request: "GET /down HTTP/1.1"'));
    expect(line.msg).toContain(
      `connect() to unix:${onHost(upstream.socketPath)} failed (2: No such file or directory) while connecting to upstream`,
    );
  });

  it('the app started again: 200 from the same proxy; SIGTERM stops the proxy with 0', async () => {
    appProcess = await startApp(appArgs);
    expect(await get('/')).toEqual({ status: 200, text: `Hello from sockproxy sample app (pid ${appProcess.pid})\n` });
    expect(await runCheck(appCheck)).toBe(0);
    proxyProcess.child.kill('SIGTERM');
    expect(await proxyProcess.waitForExit()).toEqual({ code: 0, signal: null });
  });
});
