/**
 * What the primary and its workers say to each other over node:cluster's IPC channel.
 * Every type is prefixed, so that messages of other modules (prom-client's own) pass by.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ProcessStatus } from '../admin/status.js';

/** A worker's report once its listeners are up, or why they could not be. */
export type WorkerStartMessage =
  | { readonly type: 'sockproxy:ready' }
  | { readonly type: 'sockproxy:failed'; readonly message: string };

/** The primary asks a worker for its part of /status or /metrics. */
export interface QueryMessage {
  readonly type: 'sockproxy:query';
  readonly id: number;
  readonly what: 'status' | 'metrics';
}

export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** A worker's answer to a query with the same id. */
export type ReplyMessage =
  | { readonly type: 'sockproxy:reply'; readonly id: number; readonly what: 'status'; readonly status: ProcessStatus }
  | { readonly type: 'sockproxy:reply'; readonly id: number; readonly what: 'metrics'; readonly metrics: WorkerMetrics };

export function isMessage<T extends { type: string }, K extends T['type'] = T['type']>(
  message: unknown,
  type: K,
): message is Extract<T, { type: K }> {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}
