import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  readonly dir: string;
  /** `name` inside the directory. */
  path(name: string): string;
  /** Removes the directory and everything in it. */
  remove(): void;
}

/** A fresh directory for sockets and configs; short, since sun_path holds 107 bytes. */
export function makeTempDir(): TempDir {
  const dir = mkdtempSync(join(tmpdir(), 'sp-'));
  return { dir, path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A TCP port that was free a moment ago (the proxy takes a port number, not 0). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
