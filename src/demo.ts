/**
 * `npm run demo`: the sample app on a Unix socket and the proxy in front of it, the
 * nginx + Gunicorn pair in one command. Ctrl-C stops both.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const APP_SOCKET = '/tmp/sockproxy-app.sock';
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

function start(args: string[], onExit: (how: string) => void): ChildProcess {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('exit', (code, signal) => {
    if (!stopping) onExit(String(signal ?? code));
  });
  return child;
}

let stopping = false;
const children: ChildProcess[] = [];
function stop(): void {
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

const appCommand = ['node', 'dist/app.js', '--bind', `unix:${APP_SOCKET}`];
children.push(
  start([here('./app.js'), ...appCommand.slice(2)], (how) =>
    // The proxy stays up, as nginx does when Gunicorn dies: curl now shows the 502.
    process.stderr.write(`[demo] the app exited (${how}); the proxy answers 502 until you restart it: ${appCommand.join(' ')}\n`),
  ),
);
// The proxy does not need the socket to exist yet: until it does, requests get a 502.
children.push(
  start([here('./proxy.js'), '--config', here('../config/upstream.yaml')], (how) => {
    process.stderr.write(`[demo] the proxy exited (${how}); stopping\n`);
    stop();
  }),
);
process.stderr.write(
  `[demo] app on unix:${APP_SOCKET}, proxy on :8080. Try:  curl localhost:8080/   (Ctrl-C stops both)\n`,
);
