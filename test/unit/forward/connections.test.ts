import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { type Connection, UpstreamConnections } from '../../../src/forward/connections.js';
import { UpstreamGroup } from '../../../src/upstream/group.js';
import { makeTempDir, type TempDir } from '../../helpers/temp.js';
import { httpUpstream, type TestUpstream } from '../../helpers/upstreams.js';

describe('UpstreamConnections: a kept connection whose socket closes', () => {
  let tmp: TempDir;
  let upstream: TestUpstream;
  let connections: UpstreamConnections;

  afterEach(async () => {
    await connections.close();
    await upstream.close();
    tmp.remove();
  });

  /** One GET over `connection`, as an attempt makes it: it holds the connection meanwhile. */
  async function get(connection: Connection): Promise<number> {
    connection.user = { onUpstreamEnd: () => {} };
    const res = await connection.client.request({ path: '/', method: 'GET' });
    await res.body.text();
    connection.release(true);
    return res.statusCode;
  }

  it('handed out in the turn its socket was closed (undici\'s keep-alive timer), it connects again: no "client is destroyed"', async () => {
    tmp = makeTempDir();
    upstream = await httpUpstream(tmp.path('a.sock'));
    const config = parseConfig(`listen: 8080\nupstream:\n  servers: [${upstream.address}]\n`, 'c.yaml');
    const peer = new UpstreamGroup(config.http!.upstream).primary[0]!;
    connections = new UpstreamConnections(config.http!.upstream, config.proxy);

    const first = connections.acquire(peer);
    let socket: Socket | undefined;
    const attach = first.attach.bind(first);
    first.attach = (s) => {
      socket = s;
      attach(s);
    };
    expect(await get(first)).toBe(200);
    expect(connections.count(peer)).toEqual({ idle: 1, active: 0 });

    // What undici's keep-alive timer does to an idle socket; its 'disconnect' comes a turn later.
    socket!.destroy();
    const second = connections.acquire(peer);
    expect(second).toBe(first);
    expect(await get(second)).toBe(200);
    expect(upstream.requests).toHaveLength(2);
  });
});
