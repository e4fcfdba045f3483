import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');

/** A path inside the repository, from its root: repoPath('config/upstream.yaml'). */
export function repoPath(relative: string): string {
  return join(ROOT, relative);
}

/** The built proxy and sample app: the tests run what `npm test` built into dist/. */
export const PROXY_JS = repoPath('dist/proxy.js');
export const APP_JS = repoPath('dist/app.js');
/** The Unix-socket echo demo: its server and client. */
export const ECHO_SERVER_JS = repoPath('dist/echo-server.js');
export const ECHO_CLIENT_JS = repoPath('dist/echo-client.js');
