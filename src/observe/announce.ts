import type { UpstreamBlock } from '../config/types.js';
import { describeServer } from '../upstream/address.js';
import type { Logger } from './logger.js';

/** The start line: where a proxy listens and which servers it fronts (one per HTTP proxy and stream server). */
export function announce(
  errorLog: Logger,
  version: string,
  kind: '' | 'stream ',
  addresses: readonly string[],
  upstream: UpstreamBlock,
): void {
  const servers = upstream.servers.map(describeServer).join(', ');
  errorLog.info(
    { listen: addresses, upstream: upstream.name, ...(kind === '' ? {} : { stream: true }) },
    `sockproxy ${version} ${kind}listening on ${addresses.join(', ')}, upstream "${upstream.name}": ${servers}`,
  );
}
