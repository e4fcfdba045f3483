import { afterEach, beforeEach } from 'vitest';
import { type ProxyProcess, startProxyProcess } from './proxy-process.js';
import { makeTempDir, type TempDir } from './temp.js';
import { httpUpstream, okFrom, type TestUpstream } from './upstreams.js';

export interface ProxyFixture {
  /** A fresh temp dir per test (sockets, configs). */
  readonly tmp: TempDir;
  /** The proxy the current test started, if any. */
  readonly proxy: ProxyProcess | undefined;
  /** Starts the proxy in front of `servers` (nginx server lines), with extra YAML after the upstream block. */
  start(servers: string[], extra?: string): Promise<ProxyProcess>;
  /** An upstream on `<tmp>/<name>.sock` answering 200 "ok <name>". */
  ok(name: string): Promise<TestUpstream>;
  /** Closes `closable` after the test. */
  track<T extends { close(): Promise<void> }>(...closable: T[]): T;
  /** Runs `cleanup` after the test. */
  onCleanup(cleanup: () => Promise<unknown>): void;
}

/**
 * The per-test set-up the integration tests share: a temp dir, a proxy process, test
 * upstreams, and everything stopped and removed after each test.
 */
export function useProxyFixture(): ProxyFixture {
  let tmp: TempDir | undefined;
  let proxy: ProxyProcess | undefined;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeEach(() => {
    tmp = makeTempDir();
  });

  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
    tmp?.remove();
  });

  const fixture: ProxyFixture = {
    get tmp() {
      if (tmp === undefined) throw new Error('the fixture is used outside a test');
      return tmp;
    },
    get proxy() {
      return proxy;
    },
    async start(servers, extra = '') {
      proxy = await startProxyProcess(
        `upstream:\n  servers:\n${servers.map((s) => `    - ${s}\n`).join('')}${extra}`,
        fixture.tmp.dir,
      );
      return proxy;
    },
    async ok(name) {
      return fixture.track(await httpUpstream(fixture.tmp.path(`${name}.sock`), okFrom(name)));
    },
    track(...closable) {
      for (const item of closable) cleanups.push(() => item.close());
      return closable[0]!;
    },
    onCleanup(cleanup) {
      cleanups.push(cleanup);
    },
  };
  return fixture;
}
