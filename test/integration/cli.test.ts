import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanupSockets, holdSocket, makeStaleSocket, probeSocket } from '../helpers/app-sockets.js';
import { PACKAGE_VERSION, stackLines, waitForRefused } from '../helpers/cli.js';
import { killAll, type Running } from '../helpers/node-process.js';
import { repoPath } from '../helpers/paths.js';
import { runProxy, startProxyWithConfig } from '../helpers/proxy-process.js';
import { rawConnect } from '../helpers/raw-http.js';
import { freePort, makeTempDir, type TempDir } from '../helpers/temp.js';
import { httpUpstream, okFrom, type TestUpstream } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

const SAMPLE_CONFIG = repoPath('config/upstream.yaml');

/** A unix socket path of exactly `bytes` bytes (sun_path holds 107 plus the NUL). */
function socketPathOfLength(bytes: number): string {
  const path = `/tmp/${'a'.repeat(bytes - '/tmp/'.length - '.sock'.length)}.sock`;
  if (Buffer.byteLength(path) !== bytes) throw new Error(`${path} is not ${bytes} bytes`);
  return path;
}

/** A group from /etc/group other than the process's own, to see group= take effect. */
function otherGroup(): { name: string; gid: number } {
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid !== undefined && Number(gid) !== process.getgid!()) return { name, gid: Number(gid) };
  }
  throw new Error('/etc/group has no group other than the process group');
}

describe('sockproxy command line', () => {
  let tmp: TempDir;
  const agents: Agent[] = [];
  const upstreams: TestUpstream[] = [];
  const sockets: net.Socket[] = [];

  beforeEach(() => {
    tmp = makeTempDir();
  });

  afterEach(async () => {
    await killAll();
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(agents.splice(0).map((agent) => agent.destroy()));
    await Promise.all(upstreams.splice(0).map((upstream) => upstream.close()));
    // The servers holding a port or a path (holdSocket), as another program would.
    await cleanupSockets();
    tmp.remove();
  });

  /** Writes a config file in the temp dir and returns its path. */
  function writeConfig(name: string, text: string): string {
    const file = tmp.path(name);
    writeFileSync(file, text);
    return file;
  }

  function newAgent(options: ConstructorParameters<typeof Agent>[0] = {}): Agent {
    const agent = new Agent(options);
    agents.push(agent);
    return agent;
  }

  describe('flags', () => {
    it.each(['--help', '-h'])('%s prints the usage on stdout and exits 0', async (flag) => {
      const result = await runProxy([flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Usage: sockproxy --config FILE/);
      expect(result.stdout).toContain('-t, --test');
      expect(result.stdout).toContain('-c, --config FILE');
      expect(result.stderr).toBe('');
    });

    it.each(['--version', '-v'])('%s prints "sockproxy <package.json version>"', async (flag) => {
      const result = await runProxy([flag]);
      expect(result.code).toBe(0);
      expect(PACKAGE_VERSION).toMatch(/^\d+\.\d+\.\d+/);
      expect(result.stdout).toBe(`sockproxy ${PACKAGE_VERSION}\n`);
      expect(result.stderr).toBe('');
    });

    it('an unknown flag exits 2 naming the flag, with the usage on stderr', async () => {
      const result = await runProxy(['--config', SAMPLE_CONFIG, '--bogus']);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`sockproxy: Unknown option '--bogus'`);
      expect(result.stderr).toContain('Usage: sockproxy --config FILE');
      expect(result.stdout).toBe('');
      expect(stackLines(result.stderr)).toEqual([]);
    });

    it('without --config exits 2 and says so', async () => {
      const result = await runProxy([]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('sockproxy: no configuration file: pass --config FILE');
      expect(result.stderr).toContain('Usage: sockproxy --config FILE');
      expect(result.stdout).toBe('');
    });

    it('--config without its value exits 2', async () => {
      const result = await runProxy(['--config']);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain("Option '-c, --config <value>' argument missing");
      expect(stackLines(result.stderr)).toEqual([]);
    });
  });

  describe('-t / --test', () => {
    it.each(['-t', '--test'])('%s with config/upstream.yaml: exit 0 and nginx\'s two lines', async (flag) => {
      const result = await runProxy([flag, '--config', SAMPLE_CONFIG]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe(
        `sockproxy: the configuration file ${SAMPLE_CONFIG} syntax is ok\n` +
          `sockproxy: configuration file ${SAMPLE_CONFIG} test is successful\n`,
      );
      expect(result.stdout).toBe('');
    });

    it('-c is --config; -t only checks and does not start (even on a port in use)', async () => {
      const busy = await holdSocket({ port: 0, host: '127.0.0.1' });
      const { port } = busy.address() as net.AddressInfo;
      const file = writeConfig('busy.yaml', `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - unix:/tmp/x.sock\n`);
      const result = await runProxy(['-t', '-c', file]);
      expect(result.code).toBe(0);
      expect(result.stderr).toContain('test is successful');
    });

    it('a bad config: exit 2, file:line:col and the offending value, "test failed", no stack trace', async () => {
      const file = writeConfig(
        'bad.yaml',
        'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n    - unix:/tmp/b.sock weight=0\n',
      );
      const result = await runProxy(['-t', '--config', file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `sockproxy: [emerg] ${file}:5:7: invalid parameter "weight=0" in upstream.servers[1]\n` +
          `sockproxy: configuration file ${file} test failed\n`,
      );
      expect(stackLines(result.stderr)).toEqual([]);
      expect(result.stdout).toBe('');
    });

    it('a bad config without -t also exits 2 with the same message, and does not listen', async () => {
      const port = await freePort();
      const file = writeConfig('bad.yaml', `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - h:99999\n`);
      const result = await runProxy(['--config', file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`sockproxy: [emerg] ${file}:4:7: invalid port in upstream "h:99999" in upstream.servers[0]\n`);
    });

    const longPath = socketPathOfLength(108);

    /** [name, YAML, where (line:col, or undefined for none), the text after the location]. */
    const badConfigs: ReadonlyArray<readonly [string, string, string | undefined, string]> = [
      [
        'weight=0',
        'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock weight=0\n',
        '4:7',
        'invalid parameter "weight=0" in upstream.servers[0]',
      ],
      ['an empty server list', 'listen: 8080\nupstream:\n  servers: []\n', '3:12', 'no servers are inside upstream in upstream.servers'],
      [
        'a server list with every line commented out',
        'listen: 8080\nupstream:\n  servers:\n  #  - unix:/tmp/a.sock\n',
        '3:11',
        'no servers are inside upstream in upstream.servers',
      ],
      [
        'a unix path of 108 bytes',
        `listen: 8080\nupstream:\n  servers:\n    - unix:${longPath}\n`,
        '4:7',
        `too long path in the unix domain socket in upstream "unix:${longPath}" in upstream.servers[0]`,
      ],
      [
        'port 99999',
        'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n    - h:99999 weight=2\n',
        '5:7',
        'invalid port in upstream "h:99999" in upstream.servers[1]',
      ],
      [
        'next_upstream http_501',
        'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock\nproxy:\n  next_upstream: error http_501\n',
        '6:18',
        'invalid value "http_501" in proxy.next_upstream',
      ],
      [
        'next_upstream http_501 as a YAML list (points at the item)',
        'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock\nproxy:\n  next_upstream:\n    - error\n    - http_501\n',
        '8:7',
        'invalid value "http_501" in proxy.next_upstream',
      ],
      [
        'the misspelt key listne',
        'listne: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n',
        '1:1',
        'unknown key "listne" (did you mean "listen"?)',
      ],
      [
        'keepalive: many',
        'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n  keepalive: many\n',
        '5:14',
        'upstream.keepalive must be a non-negative integer, got "many"',
      ],
      [
        'a YAML syntax error (tab indentation)',
        'listen: 8080\nupstream:\n  servers:\n\t- unix:/tmp/a.sock\n',
        '4:1',
        'Tabs are not allowed as indentation',
      ],
      ['a YAML duplicate key', 'listen: 8080\nlisten: 8081\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n', '2:1', 'Map keys must be unique'],
      [
        'an empty file',
        '',
        undefined,
        'the configuration is empty: it needs at least "listen" and "upstream.servers", or "stream"',
      ],
      [
        'a comments-only file',
        '# nothing here yet\n',
        undefined,
        'the configuration is empty: it needs at least "listen" and "upstream.servers", or "stream"',
      ],
      [
        'ip_hash with a backup server',
        'listen: 8080\nupstream:\n  balance: ip_hash\n  servers:\n    - unix:/tmp/a.sock\n    - unix:/tmp/b.sock backup\n',
        '6:7',
        'balancing method does not support parameter "backup" in upstream.servers[1] (balance is "ip_hash")',
      ],
      [
        'fail_timeout=500ms on a server line (whole seconds only)',
        'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock fail_timeout=500ms\n',
        '4:7',
        'invalid parameter "fail_timeout=500ms" in upstream.servers[0]',
      ],
      [
        'fail_timeout: 500ms in the mapping form',
        'listen: 8080\nupstream:\n  servers:\n    - address: unix:/tmp/a.sock\n      fail_timeout: 500ms\n',
        '5:21',
        'upstream.servers[0].fail_timeout must be a duration in seconds like 10, 10s or 1m30s, got "500ms"',
      ],
      [
        'a listen mode that is not permission bits',
        'listen: "unix:/tmp/p.sock mode=0999"\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n',
        '1:9',
        'invalid mode "mode=0999" (expected permission bits like mode=0660) in listen',
      ],
      [
        'a listen group that does not exist',
        'listen:\n  - unix:/tmp/p.sock group=no-such-group\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n',
        '2:5',
        'unknown group "no-such-group" (not in /etc/group; a numeric gid works too) in listen[0]',
      ],
      [
        'mode= on a TCP listen address',
        'listen: "8080 mode=0660"\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n',
        '1:9',
        '"mode=0660" applies only to a unix: listen address, not "*:8080", in listen',
      ],
      [
        'an unknown listen parameter',
        'listen: "unix:/tmp/p.sock backlog=511"\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n',
        '1:9',
        'invalid parameter "backlog=511" (a listen address takes mode= and group=, for unix: sockets) in listen',
      ],
    ];

    it.each(badConfigs)('%s: exit 2 at the right place', async (name, yaml, where, text) => {
      const file = writeConfig(`${name.replace(/\W+/g, '-')}.yaml`, yaml);
      const result = await runProxy(['-t', '--config', file]);
      expect(result.code).toBe(2);
      const location = where === undefined ? file : `${file}:${where}`;
      expect(result.stderr).toBe(
        `sockproxy: [emerg] ${location}: ${text}\nsockproxy: configuration file ${file} test failed\n`,
      );
      expect(stackLines(result.stderr)).toEqual([]);
    });

    it('a missing file: exit 2, the file named with strerror\'s words', async () => {
      const file = tmp.path('nope.yaml');
      const result = await runProxy(['-t', '--config', file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `sockproxy: [emerg] cannot read config file "${file}": No such file or directory\n` +
          `sockproxy: configuration file ${file} test failed\n`,
      );
    });

    it('a directory as the config file: exit 2, "Is a directory"', async () => {
      const result = await runProxy(['-t', '--config', tmp.dir]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`cannot read config file "${tmp.dir}": Is a directory`);
      expect(stackLines(result.stderr)).toEqual([]);
    });

    const goodConfigs: ReadonlyArray<readonly [string, string]> = [
      ['a server line pasted from nginx.conf', 'listen: 8080\nupstream:\n  servers:\n    - server unix:/tmp/x.sock fail_timeout=0;\n'],
      [
        'the mapping form',
        'listen: 8080\nupstream:\n  servers:\n    - address: unix:/tmp/x.sock\n      fail_timeout: 0\n      weight: 2\n      backup: true\n',
      ],
      ['a unix path of 107 bytes (the most sun_path holds)', `listen: 8080\nupstream:\n  servers:\n    - unix:${socketPathOfLength(107)}\n`],
      ['ip_hash without backup', 'listen: 8080\nupstream:\n  balance: ip_hash\n  servers:\n    - unix:/tmp/a.sock\n    - unix:/tmp/b.sock down\n'],
    ];

    it.each(goodConfigs)('%s is accepted', async (name, yaml) => {
      const file = writeConfig(`${name.replace(/\W+/g, '-')}.yaml`, yaml);
      const result = await runProxy(['-t', '--config', file]);
      expect(result.stderr).toBe(
        `sockproxy: the configuration file ${file} syntax is ok\nsockproxy: configuration file ${file} test is successful\n`,
      );
      expect(result.code).toBe(0);
    });
  });

  describe('start-up', () => {
    it('prints one line with the listen address and the servers it fronts (a pasted nginx line, parsed)', async () => {
      const port = await freePort();
      const sock = tmp.path('app.sock');
      const file = writeConfig(
        'proxy.yaml',
        `listen: 127.0.0.1:${port}\nupstream:\n  name: app_server\n  servers:\n    - server unix:${sock} fail_timeout=0;\n    - 127.0.0.1:8001 weight=2 backup\n`,
      );
      const proxy = await startProxyWithConfig(file);
      const lines = proxy.stderr().split('\n').filter((line) => line.includes('listening on'));
      expect(lines).toHaveLength(1);
      const msg = String(proxy.errorLog().find((line) => String(line.msg).includes('listening on'))!.msg);
      expect(msg).toContain(`sockproxy ${PACKAGE_VERSION} listening on 127.0.0.1:${port}`);
      expect(msg).toContain('upstream "app_server"');
      // The ";" and the "server" keyword are gone: the address is the socket path itself.
      expect(msg).toContain(`unix:${sock} weight=1 max_fails=1 fail_timeout=0s`);
      expect(msg).toContain('127.0.0.1:8001 weight=2 max_fails=1 fail_timeout=10s backup');
      expect(proxy.alive()).toBe(true);
    });
  });

  describe('failures at start: exit 1, the reason on stderr, no stack', () => {
    async function startFails(listen: string): Promise<{ code: number | null; stderr: string }> {
      const file = writeConfig('proxy.yaml', `listen: ${listen}\nupstream:\n  servers:\n    - unix:/tmp/x.sock\n`);
      const result = await runProxy(['--config', file], 10_000);
      expect(stackLines(result.stderr)).toEqual([]);
      expect(result.stderr).not.toContain('listening on');
      return result;
    }

    it('a TCP address already in use', async () => {
      const busy = await holdSocket({ port: 0, host: '127.0.0.1' });
      const { port } = busy.address() as net.AddressInfo;
      const result = await startFails(`127.0.0.1:${port}`);
      expect(result.stderr).toBe(`sockproxy: [emerg] bind() to 127.0.0.1:${port} failed (98: Address already in use)\n`);
      expect(result.code).toBe(1);
    });

    it('a unix path a live server listens on is "already in use", and that server keeps it', async () => {
      const path = tmp.path('live.sock');
      await holdSocket(path);
      const result = await startFails(`unix:${path}`);
      expect(result.stderr).toBe(`sockproxy: [emerg] bind() to unix:${path} failed (98: Address already in use)\n`);
      expect(result.code).toBe(1);
      expect(statSync(path).isSocket()).toBe(true);
      // Still the live server's socket: a connect is accepted.
      expect(await probeSocket(path)).toBeUndefined();
    });

    it('a unix path that is a regular file: exit 1, and the file is left alone', async () => {
      const path = tmp.path('precious.txt');
      writeFileSync(path, 'do not delete me\n');
      const result = await startFails(`unix:${path}`);
      expect(result.stderr).toBe(
        `sockproxy: [emerg] bind() to unix:${path} failed: "${path}" exists and is not a socket; refusing to replace it\n`,
      );
      expect(result.code).toBe(1);
      expect(readFileSync(path, 'utf8')).toBe('do not delete me\n');
    });

    it('a unix path under a regular file: bind() failed (20: Not a directory)', async () => {
      const file = tmp.path('plain');
      writeFileSync(file, 'x');
      const result = await startFails(`unix:${file}/p.sock`);
      expect(result.stderr).toBe(`sockproxy: [emerg] bind() to unix:${file}/p.sock failed (20: Not a directory)\n`);
      expect(result.code).toBe(1);
    });

    it('a unix path in a missing directory: bind() failed (2: No such file or directory)', async () => {
      const path = tmp.path('missing-dir/p.sock');
      const result = await startFails(`unix:${path}`);
      expect(result.code).toBe(1);
      // nginx reports bind()'s own errno. libuv turns a pipe bind's ENOENT into EACCES
      // ("for compatibility with Windows"), which would send an operator to check permissions.
      expect(result.stderr).toBe(`sockproxy: [emerg] bind() to unix:${path} failed (2: No such file or directory)\n`);
    });

    it('when the second listener fails, the first is closed and its socket file removed', async () => {
      const first = tmp.path('first.sock');
      const busy = await holdSocket({ port: 0, host: '127.0.0.1' });
      const { port } = busy.address() as net.AddressInfo;
      const result = await startFails(`\n  - unix:${first}\n  - 127.0.0.1:${port}`);
      expect(result.stderr).toBe(`sockproxy: [emerg] bind() to 127.0.0.1:${port} failed (98: Address already in use)\n`);
      expect(result.code).toBe(1);
      expect(existsSync(first)).toBe(false);
    });
  });

  describe('a unix listen socket', () => {
    it('a stale socket file is replaced; requests are served on it; SIGTERM exits 0 and removes it', async () => {
      const listenPath = tmp.path('proxy.sock');
      await makeStaleSocket(listenPath);
      expect(statSync(listenPath).isSocket()).toBe(true);
      const upstream = await httpUpstream(tmp.path('app.sock'), okFrom('app'));
      upstreams.push(upstream);
      const file = writeConfig('proxy.yaml', `listen: unix:${listenPath}\nupstream:\n  servers:\n    - ${upstream.address}\n`);
      const proxy = await startProxyWithConfig(file);
      const startLine = proxy.errorLog().find((line) => String(line.msg).includes('listening on'))!;
      expect(String(startLine.msg)).toContain(`listening on unix:${listenPath}`);

      const agent = newAgent({ connect: { socketPath: listenPath } });
      const res = await request('http://localhost/through-unix', { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('ok app\n');
      expect(upstream.requests.map((r) => r.url)).toEqual(['/through-unix']);

      proxy.child.kill('SIGTERM');
      expect(await proxy.waitForExit(5_000)).toEqual({ code: 0, signal: null });
      expect(existsSync(listenPath)).toBe(false);
    });

    it('mode= and group= are the socket file\'s mode and group; HTTP is served on it; it is removed on exit', async () => {
      const group = otherGroup();
      const listenPath = tmp.path('proxy.sock');
      const upstream = await httpUpstream(tmp.path('app.sock'), okFrom('app'));
      upstreams.push(upstream);
      const file = writeConfig(
        'proxy.yaml',
        `listen:\n  - unix:${listenPath} mode=0660 group=${group.name}\nupstream:\n  servers:\n    - ${upstream.address}\n`,
      );
      const proxy = await startProxyWithConfig(file);
      const stats = statSync(listenPath);
      expect(stats.isSocket()).toBe(true);
      expect((stats.mode & 0o777).toString(8)).toBe('660');
      expect(stats.gid).toBe(group.gid);

      const agent = newAgent({ connect: { socketPath: listenPath } });
      const res = await request('http://localhost/through-unix', { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('ok app\n');
      expect(upstream.requests.map((r) => r.url)).toEqual(['/through-unix']);

      proxy.child.kill('SIGTERM');
      expect(await proxy.waitForExit(5_000)).toEqual({ code: 0, signal: null });
      expect(existsSync(listenPath)).toBe(false);
    });

    it('mode= alone keeps the process group and sets exactly those bits, whatever the umask', async () => {
      const listenPath = tmp.path('proxy.sock');
      const file = writeConfig('proxy.yaml', `listen: "unix:${listenPath} mode=600"\nupstream:\n  servers:\n    - unix:/tmp/x.sock\n`);
      await startProxyWithConfig(file);
      const stats = statSync(listenPath);
      expect((stats.mode & 0o777).toString(8)).toBe('600');
      expect(stats.gid).toBe(process.getgid!());
    });
  });

  describe('signals', () => {
    /** The proxy on a free TCP port in front of `upstream`; both are stopped after the test. */
    async function startProxyFor(upstream: TestUpstream): Promise<{ proxy: Running; port: number; upstream: TestUpstream }> {
      upstreams.push(upstream);
      const port = await freePort();
      const file = writeConfig('proxy.yaml', `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${upstream.address}\n`);
      return { proxy: await startProxyWithConfig(file), port, upstream };
    }

    it.each([
      ['SIGTERM', 'no connection'],
      ['SIGINT', 'no connection'],
      ['SIGTERM', 'an idle keep-alive client connection'],
      ['SIGINT', 'an idle keep-alive client connection'],
    ] as const)('%s with %s: exit 0 in under 5 s', async (signal, situation) => {
      const { proxy, port } = await startProxyFor(await httpUpstream(tmp.path('app.sock'), okFrom('app')));
      if (situation !== 'no connection') {
        // The client and the proxy's upstream pool both keep their connection open.
        const agent = newAgent({ keepAliveTimeout: 60_000 });
        const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: agent });
        expect(res.statusCode).toBe(200);
        await res.body.text();
      }
      const started = Date.now();
      proxy.child.kill(signal);
      expect(await proxy.waitForExit(10_000)).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(proxy.errorLog().some((line) => String(line.msg).startsWith(`${signal} received, gracefully shutting down`))).toBe(true);
    });

    /** A proxy in front of an upstream that answers only when `release` is called. */
    async function startGatedProxy(): Promise<{ proxy: Running; port: number; upstream: TestUpstream; release: () => void }> {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const upstream = await httpUpstream(tmp.path('slow.sock'), (req, res) => {
        req.resume();
        void released.then(() => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('slow but complete\n');
        });
      });
      return { ...(await startProxyFor(upstream)), release };
    }

    async function waitForUpstreamRequest(upstream: TestUpstream): Promise<void> {
      await until(() => upstream.requests.length > 0, 10_000, 'the request to reach the upstream');
    }

    /** Sends SIGTERM and waits until the proxy has begun its graceful stop and closed its listener. */
    async function beginShutdown(proxy: Running, port: number): Promise<void> {
      proxy.child.kill('SIGTERM');
      await proxy.waitForLog((line) => String(line.msg).startsWith('SIGTERM received, gracefully shutting down'));
      // "stop accepting connections and let requests in flight finish"
      await waitForRefused(port);
      expect(proxy.alive()).toBe(true);
    }

    it('SIGTERM during a request: the listener closes at once, the request completes with 200, then exit 0', async () => {
      const { proxy, port, upstream, release } = await startGatedProxy();
      const agent = newAgent();
      let settled = false;
      const pending = request(`http://127.0.0.1:${port}/slow`, { dispatcher: agent }).then(async (res) => ({
        status: res.statusCode,
        text: await res.body.text(),
      }));
      void pending.finally(() => (settled = true)).catch(() => {});
      await waitForUpstreamRequest(upstream);

      await beginShutdown(proxy, port);
      expect(settled).toBe(false);
      release();
      expect(await pending).toEqual({ status: 200, text: 'slow but complete\n' });
      expect(await proxy.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    });

    it('SIGTERM during a request: once answered, the keep-alive connection is closed and the proxy exits at once', async () => {
      const { proxy, port, upstream, release } = await startGatedProxy();
      // A raw HTTP/1.1 client that keeps its connection open, as a browser or a load balancer does.
      const client = await rawConnect(port);
      sockets.push(client.socket);
      client.socket.write('GET /slow HTTP/1.1\r\nHost: example.test\r\n\r\n');
      await waitForUpstreamRequest(upstream);

      await beginShutdown(proxy, port);
      release();
      // The chunked body's last chunk: the response is complete.
      await until(
        () => client.received().endsWith('\r\n0\r\n\r\n'),
        10_000,
        () => `a complete response; got ${JSON.stringify(client.received())}`,
      );
      const answeredAt = Date.now();
      const received = client.received();
      expect(received).toMatch(/^HTTP\/1\.1 200 /);
      expect(received).toContain('slow but complete\n');
      // nginx closes a keep-alive connection as soon as it goes idle during a graceful stop;
      // waiting for the client (or for keepAliveTimeout) only delays the exit.
      await client.waitClosed(2_000).catch(() => {});
      expect(client.socket.destroyed, 'the proxy still holds the idle keep-alive connection 2 s after answering').toBe(true);
      expect(await proxy.waitForExit(10_000)).toEqual({ code: 0, signal: null });
      expect(Date.now() - answeredAt).toBeLessThan(2_500);
    });

    it('a second signal stops at once, even with a request still in flight', async () => {
      const { proxy, port, upstream } = await startProxyFor(await httpUpstream(tmp.path('never.sock'), (req) => req.resume()));
      const agent = newAgent();
      const pending = request(`http://127.0.0.1:${port}/hang`, { dispatcher: agent }).catch((err: Error) => err);
      await waitForUpstreamRequest(upstream);
      await beginShutdown(proxy, port);
      const started = Date.now();
      proxy.child.kill('SIGTERM');
      expect(await proxy.waitForExit(5_000)).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(3_000);
      // The client learns its connection is gone rather than waiting forever.
      expect(await pending).toBeInstanceOf(Error);
    });
  });
});
