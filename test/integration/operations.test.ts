import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stackLines } from '../helpers/cli.js';
import { killAll, parseJsonLines, runNode } from '../helpers/node-process.js';
import { runProxy, startProxyWithConfig } from '../helpers/proxy-process.js';
import { freePort, makeTempDir, type TempDir } from '../helpers/temp.js';
import { httpUpstream, okFrom, type TestUpstream } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

/** What an operator does to a running proxy: -s reload|reopen|quit|stop (and --reload), the pid file, SIGUSR1. */
describe('operating a running proxy', () => {
  let tmp: TempDir;
  const upstreams: TestUpstream[] = [];

  beforeEach(() => {
    tmp = makeTempDir();
  });

  afterEach(async () => {
    await killAll();
    await Promise.all(upstreams.splice(0).map((upstream) => upstream.close()));
    tmp.remove();
  });

  async function upstream(name: string): Promise<TestUpstream> {
    const started = await httpUpstream(tmp.path(`${name}.sock`), okFrom(name));
    upstreams.push(started);
    return started;
  }

  async function get(port: number, path: string): Promise<{ status: number; text: string }> {
    const res = await request(`http://127.0.0.1:${port}${path}`);
    return { status: res.statusCode, text: await res.body.text() };
  }

  it('--reload --config FILE, with the default pid file: the running proxy takes the edited file', async () => {
    const [a, b] = [await upstream('a'), await upstream('b')];
    const port = await freePort();
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${a.address}\n`);
    const proxy = await startProxyWithConfig(file);
    expect(await get(port, '/before')).toEqual({ status: 200, text: 'ok a\n' });

    writeFileSync(file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${b.address}\n`);
    const result = await runProxy(['--reload', '--config', file]);
    expect(result).toMatchObject({ code: 0, stdout: '', stderr: '' });
    await proxy.waitForLog((l) => l.msg === 'SIGHUP received, reconfiguring');
    await proxy.waitForLog((l) => l.msg === `reconfigured: ${file} is in force`);
    expect(await get(port, '/after')).toEqual({ status: 200, text: 'ok b\n' });

    // -s quit: a graceful stop, and the pid file goes with the process.
    expect(await runProxy(['-s', 'quit', '-c', file])).toMatchObject({ code: 0, stderr: '' });
    expect(await proxy.waitForExit(5_000)).toEqual({ code: 0, signal: null });
    const again = await runProxy(['-s', 'reload', '-c', file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^sockproxy: \[error\] open\(\) ".*sockproxy-proxy\.yaml-[0-9a-f]{12}\.pid" failed \(2: No such file or directory\)\n$/);
  });

  it('pid: FILE holds the process id while it runs; -s stop stops it and removes the file', async () => {
    const a = await upstream('a');
    const port = await freePort();
    const pidFile = tmp.path('sockproxy.pid');
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\npid: ${pidFile}\nupstream:\n  servers:\n    - ${a.address}\n`);
    const proxy = await startProxyWithConfig(file);
    expect(readFileSync(pidFile, 'utf8')).toBe(`${proxy.pid}\n`);
    expect(await runProxy(['-s', 'stop', '-c', file])).toMatchObject({ code: 0, stderr: '' });
    expect(await proxy.waitForExit(5_000)).toEqual({ code: 0, signal: null });
    expect(existsSync(pidFile)).toBe(false);
  });

  it('a pid file whose process is gone: nginx\'s kill() error, exit 1', async () => {
    const pidFile = tmp.path('sockproxy.pid');
    // The pid of a process that has just exited.
    const script = tmp.path('exit.mjs');
    writeFileSync(script, 'process.stdout.write(String(process.pid));\n');
    const child = Number((await runNode(script, [])).stdout);
    writeFileSync(pidFile, `${child}\n`);
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, `listen: 8080\npid: ${pidFile}\nupstream:\n  servers:\n    - unix:/tmp/x.sock\n`);
    const result = await runProxy(['--reload', '-c', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`sockproxy: [error] kill(${child}, SIGHUP) failed (3: No such process)\n`);
    expect(stackLines(result.stderr)).toEqual([]);
  });

  it('a pid file naming a process that is not sockproxy is refused, and that process is left alone', async () => {
    const pidFile = tmp.path('sockproxy.pid');
    // This test runner: a live process that is not the proxy.
    writeFileSync(pidFile, `${process.pid}\n`);
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, `listen: 8080\npid: ${pidFile}\nupstream:\n  servers:\n    - unix:/tmp/x.sock\n`);
    const result = await runProxy(['-s', 'stop', '-c', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^sockproxy: \\[error\\] process ${process.pid} named in "${pidFile}" is not sockproxy \\(".*"\\): the pid file is stale\\n$`));
  });

  it.each([
    ['an unknown -s signal', ['-s', 'restart'], 2, 'sockproxy: invalid option: "-s restart" (reload, reopen, quit or stop)'],
    ['-s without --config', ['-s', 'reload'], 2, 'sockproxy: no configuration file: pass --config FILE'],
  ])('%s: exit 2 with the usage', async (_name, args, code, message) => {
    const result = await runProxy(args);
    expect(result.code).toBe(code);
    expect(result.stderr.split('\n')[0]).toBe(message);
  });

  it('--reload with an invalid file reports it as -t does and signals nothing', async () => {
    const file = tmp.path('bad.yaml');
    writeFileSync(file, 'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock weight=0\n');
    const result = await runProxy(['--reload', '-c', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`sockproxy: [emerg] ${file}:4:7: invalid parameter "weight=0" in upstream.servers[0]\n`);
  });

  it('a pid file that cannot be written: exit 1 in nginx\'s words, nothing left listening', async () => {
    const port = await freePort();
    const file = tmp.path('proxy.yaml');
    const pidFile = tmp.path('missing-dir/sockproxy.pid');
    writeFileSync(file, `listen: 127.0.0.1:${port}\npid: ${pidFile}\nupstream:\n  servers:\n    - unix:/tmp/x.sock\n`);
    const result = await runProxy(['-c', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`sockproxy: [emerg] open() "${pidFile}" failed (2: No such file or directory)\n`);
  });

  it('SIGUSR1 reopens the access log file: after logrotate renamed it, the next lines go to a new file', async () => {
    const a = await upstream('a');
    const port = await freePort();
    const accessFile = tmp.path('logs/access.log');
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\nlog:\n  access: ${accessFile}\nupstream:\n  servers:\n    - ${a.address}\n`);
    const proxy = await startProxyWithConfig(file);
    const uris = (path: string) => (existsSync(path) ? parseJsonLines(readFileSync(path, 'utf8')).map((l) => l.request_uri) : []);

    expect((await get(port, '/first')).status).toBe(200);
    await until(() => uris(accessFile).includes('/first'), 5_000, 'the first line in the access log');
    renameSync(accessFile, `${accessFile}.1`);
    expect((await get(port, '/renamed')).status).toBe(200);
    // Until reopened, the renamed file (the same open file) gets the lines.
    await until(() => uris(`${accessFile}.1`).includes('/renamed'), 5_000, 'the line written before the reopen');

    expect(await runProxy(['-s', 'reopen', '-c', file])).toMatchObject({ code: 0, stderr: '' });
    await proxy.waitForLog((l) => l.msg === 'SIGUSR1 received, reopening logs');
    await until(() => existsSync(accessFile), 5_000, 'the new access log file');
    expect((await get(port, '/reopened')).status).toBe(200);
    await until(() => uris(accessFile).includes('/reopened'), 5_000, 'the next line in the new file');
    expect(uris(`${accessFile}.1`)).toEqual(['/first', '/renamed']);
    expect(uris(accessFile)).toEqual(['/reopened']);
  });
});
