/**
 * A worker's side of the cluster: it tells the primary when its listeners are up (or why
 * they are not) and answers the primary's queries for its part of /status and /metrics.
 * Everything else (requests, signals) a worker handles as a single process does.
 */
import { processStatus, type StatusSource } from '../admin/status.js';
import { parseConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { isMessage, type QueryMessage, type ReplyMessage, type WorkerStartMessage } from './messages.js';

/**
 * The environment variable through which the primary gives a worker the configuration
 * text it checked: a worker started again later runs what the others run, even if the
 * file was edited since and not reloaded (nginx's workers get it from the master too).
 */
export const CONFIG_SOURCE_ENV = 'SOCKPROXY_WORKER_CONFIG';

/** The configuration the primary gave this worker; `file` only names it in messages. Throws ConfigError. */
export function configFromPrimary(file: string): Config {
  const source = process.env[CONFIG_SOURCE_ENV];
  // Not passed on to anything this process starts.
  delete process.env[CONFIG_SOURCE_ENV];
  if (source === undefined) throw new Error(`a worker process needs ${CONFIG_SOURCE_ENV} from its primary`);
  return parseConfig(source, file);
}

export function reportStart(message: WorkerStartMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined) resolve();
    else process.send(message, undefined, undefined, () => resolve());
  });
}

/** Answers the primary's queries from `source` (undefined: the admin endpoint is off, nothing to answer). */
export function answerQueries(source: StatusSource): void {
  process.on('message', (message: unknown) => {
    if (!isMessage<QueryMessage>(message, 'sockproxy:query')) return;
    void reply(message, source).then(
      (answer) => process.send?.(answer),
      // The channel closed (the primary is gone): nobody to answer.
      () => {},
    );
  });
}

async function reply(query: QueryMessage, source: StatusSource): Promise<ReplyMessage> {
  if (query.what === 'status') return { type: 'sockproxy:reply', id: query.id, what: 'status', status: await processStatus(source) };
  return { type: 'sockproxy:reply', id: query.id, what: 'metrics', metrics: await source.metrics.registry.getMetricsAsJSON() };
}
