/** Reading the admin endpoint (GET /status, GET /metrics) as a monitoring system would. */
import { Agent, request } from 'undici';
import type { StatusDocument } from '../../src/admin/status.js';

/** An admin address as the tests write it: a TCP origin, or a unix socket path. */
export type AdminTarget = { readonly url: string } | { readonly socketPath: string };

async function get(target: AdminTarget, path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const agent = 'socketPath' in target ? new Agent({ connect: { socketPath: target.socketPath } }) : undefined;
  try {
    const origin = 'url' in target ? target.url : 'http://admin';
    const res = await request(`${origin}${path}`, { method: method as 'GET', ...(agent === undefined ? {} : { dispatcher: agent }) });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  } finally {
    await agent?.close();
  }
}

export function adminRequest(target: AdminTarget, path: string, method?: string) {
  return get(target, path, method);
}

export async function scrapeStatus(target: AdminTarget): Promise<StatusDocument> {
  const res = await get(target, '/status');
  if (res.status !== 200) throw new Error(`GET /status answered ${res.status}: ${res.text}`);
  return JSON.parse(res.text) as StatusDocument;
}

export async function scrapeMetrics(target: AdminTarget): Promise<string> {
  const res = await get(target, '/metrics');
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${res.text}`);
  return res.text;
}

/**
 * The value of one sample in Prometheus text: `name{labels}` with exactly these labels
 * (in any order), or undefined when there is no such line.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[pair[1]!] = pair[2]!;
    const keys = Object.keys(labels);
    if (keys.length !== Object.keys(found).length || keys.some((key) => found[key] !== labels[key])) continue;
    return Number(match[3]);
  }
  return undefined;
}
