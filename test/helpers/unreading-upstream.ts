/**
 * An upstream that accepts a request and then stops reading it: for proxy_send_timeout,
 * which is about the upstream not taking the request body (an app stuck before it reads,
 * or a full accept-side buffer), not about the client.
 */
import { type RawUpstream, rawUpstream } from './misbehaving-upstreams.js';

/**
 * A `net` server on `path` that reads each connection until the end of the request head,
 * records the request, then pauses the socket for good and never answers: once the kernel
 * buffers are full, the proxy's writes stall.
 */
export function unreadingUpstream(path: string): Promise<RawUpstream> {
  return rawUpstream(path, (socket) => socket.pause(), { afterHead: true });
}
