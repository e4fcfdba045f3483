import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pidFilePath } from '../../src/pid-file.js';

describe('pidFilePath: where -s finds the proxy of a configuration', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function configFile(name: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'sp-pid-'));
    dirs.push(dir);
    const file = join(dir, name);
    writeFileSync(file, 'listen: 8080\n');
    return file;
  }

  it('pid: off has none, pid: PATH is that path', () => {
    expect(pidFilePath('/etc/x.yaml', { kind: 'off' })).toBeUndefined();
    expect(pidFilePath('/etc/x.yaml', { kind: 'file', path: '/run/sp.pid' })).toBe('/run/sp.pid');
  });

  it('the default is in the temp directory, named after the file, the same by any path to it', () => {
    const file = configFile('proxy.yaml');
    const byAbsolute = pidFilePath(file, { kind: 'default' })!;
    expect(dirname(byAbsolute)).toBe(tmpdir());
    expect(byAbsolute).toMatch(/\/sockproxy-proxy\.yaml-[0-9a-f]{12}\.pid$/);
    expect(pidFilePath(relative(process.cwd(), file), { kind: 'default' })).toBe(byAbsolute);
    const link = join(dirname(file), 'link.yaml');
    symlinkSync(file, link);
    expect(pidFilePath(link, { kind: 'default' })).toBe(byAbsolute);
  });

  it('two configurations of the same name in different directories get different pid files', () => {
    expect(pidFilePath(configFile('proxy.yaml'), { kind: 'default' })).not.toBe(pidFilePath(configFile('proxy.yaml'), { kind: 'default' }));
  });
});
