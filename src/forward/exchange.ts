import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { ClientLimits, HeaderTemplate, ProxySettings } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { RequestObserver } from '../observe/metrics.js';
import { type AccessEntry, formatSeconds, seconds } from '../observe/access-log.js';
import type { BalanceContext, Balancer } from '../balancer/index.js';
import { ProxyError } from '../errors.js';
import { refusalForRequest } from '../server/client-refusals.js';
import type { RequestBodyWatch } from '../server/http-server.js';
import { describeErrno } from '../server/errno.js';
import type { RequestPeers, UpstreamGroup } from '../upstream/group.js';
import type { Peer } from '../upstream/peer.js';
import type { QueuedRequest, RequestQueue } from '../upstream/queue.js';
import { Attempt, type AttemptListener } from './attempt.js';
import type { Connection, UpstreamConnections } from './connections.js';
import { classifyUpstreamError, describeTunnelEnding, PHASE_ACTION, TUNNEL_ACTION, type UpstreamFailure } from './classify.js';
import { clientResponseHeaders, switchingProtocolsHead, upstreamRequestHeaders } from './headers.js';
import {
  countsAsFailure,
  type NextUpstreamCause,
  shouldTryNext,
  statusCause,
  statusForCause,
} from './next-upstream.js';
import { readBufferedBody } from './buffered-body.js';
import { discardRestOfBody, StreamedBody, type TooLarge, type UpstreamBody, watchSendTimeout } from './request-body.js';
import { newRequestId } from './request-id.js';
import { ResponseBuffer } from './response-buffer.js';
import { Tunnel, type TunnelResult } from '../tunnel.js';
import type { TunnelRegistry } from './tunnels.js';
import { remoteAddr, type VariableContext, variableValue } from './variables.js';

/** Everything the per-request loop needs, built once per configuration. */
export interface ForwardContext {
  readonly group: UpstreamGroup;
  readonly balancer: Balancer;
  readonly connections: UpstreamConnections;
  /** The upgraded connections (max_upgraded; refused while stopping, closed at shutdown_timeout). */
  readonly tunnels: TunnelRegistry;
  /** upstream.queue: where a request waits while the servers are at max_conns; undefined without one. */
  readonly queue: RequestQueue | undefined;
  readonly proxy: ProxySettings;
  /** YAML `http`: what the request head may be (large_client_header_buffers). */
  readonly client: ClientLimits;
  readonly requestRules: ReadonlyMap<string, HeaderTemplate>;
  readonly errorLog: Logger;
  readonly accessLog: Logger | undefined;
  /** Metrics and /status counts (src/observe/metrics.ts); undefined when the admin endpoint is off. */
  readonly observer: RequestObserver | undefined;
}

/** nginx's status for a client that closed the connection before the response was sent. */
const CLIENT_CLOSED_REQUEST = 499;

/** A client-supplied X-Request-Id is kept only if it is short and plain, so it is safe in logs. */
const CLIENT_REQUEST_ID = /^[\w.:@+=/-]{1,128}$/;

/** What the client is told, without naming internal addresses (those go to the error log). */
const ERROR_TEXT: Readonly<Record<number, string>> = {
  408: 'Request Timeout: the request body did not arrive within client_body_timeout',
  413: 'Request Entity Too Large: the request body is larger than client_max_body_size',
  501: 'Not Implemented: an upgrade request with a body is not supported',
  502: 'Bad Gateway: the upstream server could not be reached or sent no valid response',
  504: 'Gateway Timeout: the upstream server did not answer in time',
};
const NO_LIVE_TEXT = 'Bad Gateway: no upstream server is available';
const MAX_UPGRADED_TEXT = 'Service Unavailable: too many upgraded connections (WebSocket) are open';
const STOPPING_TEXT = 'Service Unavailable: the proxy is shutting down';

/**
 * 503, as HAProxy answers a full or timed-out queue (nginx Plus answers 502): the servers
 * are up but busy, and the client may try again later (RFC 9110 §15.6.4).
 */
const QUEUE_FULL_TEXT = 'Service Unavailable: every upstream server is busy and the request queue is full';
const QUEUE_TIMEOUT_TEXT = 'Service Unavailable: no upstream server became free within the queue timeout';

/** A request that asked to switch protocols: its client connection, and what followed the request head. */
export interface UpgradeRequest {
  readonly socket: Socket;
  readonly head: Buffer;
}


/**
 * One client request through its upstream attempts: nginx's ngx_http_upstream_connect /
 * ngx_http_upstream_next loop. Policy lives here; the transport is ./attempt.ts, the
 * decisions are the pure functions of ./next-upstream.ts.
 */
export class Exchange implements AttemptListener, RequestBodyWatch {
  readonly #ctx: ForwardContext;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #startedAt = performance.now();
  readonly #requestId: string;
  readonly #vars: VariableContext;
  readonly #peers: RequestPeers;
  /** Set for an upgrade request: the client connection to tunnel once a server answers 101. */
  readonly #upgrade: UpgradeRequest | undefined;
  /** This upgrade request holds a slot of max_upgraded, to give back unless a tunnel takes it over. */
  #holdsTunnelSlot = false;
  /** The request body for the attempts; set once read in full when request_buffering is on. */
  #body: UpstreamBody | undefined;
  /** proxy_buffering for this response, decided from its headers. */
  #buffersResponse = false;
  /** What the client has not taken yet; made the first time the client falls behind. */
  #responseBuffer: ResponseBuffer | undefined;
  #triesLeft: number;
  #attempt: Attempt | undefined;
  /** One entry per attempt, for $upstream_addr, $upstream_status, $upstream_response_time. */
  readonly #tried: { addr: string; status: string; time: string }[] = [];
  #bytesSent = 0;
  #status = 0;
  #done = false;
  #awaitingDrain = false;
  /** This request in the upstream queue, while it waits there. */
  #queued: QueuedRequest | undefined;

  /** The balancer, with what it may need to know of this request (ip_hash, hash KEY). */
  readonly #balanceContext: BalanceContext;
  readonly #pick = (candidates: readonly Peer[], eligible: (peer: Peer) => boolean): Peer | undefined =>
    this.#ctx.balancer(candidates, eligible, this.#balanceContext);

  /**
   * `res` answers the request over HTTP; for an upgrade request (`upgrade`) that is a
   * refusal or an error, after which the server closes the connection.
   */
  constructor(ctx: ForwardContext, req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeRequest) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res;
    this.#upgrade = upgrade;
    const clientId = req.headers['x-request-id'];
    this.#requestId =
      typeof clientId === 'string' && CLIENT_REQUEST_ID.test(clientId) ? clientId : newRequestId();
    this.#vars = { req, requestId: this.#requestId, proxyHost: ctx.group.name };
    this.#balanceContext = {
      clientAddress: remoteAddr(req),
      variable: (name) => variableValue(name, this.#vars),
      state: {},
    };
    this.#peers = ctx.group.newRequest();
    this.#triesLeft = ctx.group.tries(ctx.proxy.nextUpstreamTries);
    if (upgrade === undefined && hasBody(req) && !ctx.proxy.requestBuffering) {
      this.#body = new StreamedBody(
        req,
        { maxBytes: ctx.proxy.clientMaxBodySizeBytes, timeoutMs: ctx.proxy.clientBodyTimeoutMs },
        (event) => (event.kind === 'too_large' ? this.#onBodyTooLarge(event) : this.#onStreamedBodyTimeout()),
      );
    }
    res.on('close', this.#onClientClose);
  }

  /**
   * `expectsContinue`: the client sent `Expect: 100-continue` and waits for our go-ahead
   * before sending the body; nginx answers it itself and never forwards Expect.
   */
  start(expectsContinue = false): void {
    const refused = refusalForRequest(this.#req, this.#ctx.client);
    if (refused !== undefined) {
      // What node's parser let through but nginx refuses: answered here, the connection
      // closed after it as nginx does, no upstream contacted.
      this.#logError('info', `${refused.message} while ${refused.action}`);
      this.#res.shouldKeepAlive = false;
      this.#respondError(refused.status, refused.text);
      return;
    }
    if (this.#upgrade !== undefined) {
      this.#startUpgrade();
      return;
    }
    const limit = this.#ctx.proxy.clientMaxBodySizeBytes;
    const declared = Number(this.#req.headers['content-length']);
    if (limit > 0 && declared > limit) {
      // Refused before any upstream is contacted (ngx_http_core_module).
      this.#logError('error', `client intended to send too large body: ${declared} bytes`);
      // A client waiting for 100 Continue has not sent the body: refuse it and close,
      // rather than read a body nobody wants.
      if (expectsContinue) this.#res.shouldKeepAlive = false;
      this.#respondError(413);
      return;
    }
    if (expectsContinue) this.#res.writeContinue();
    if (hasBody(this.#req) && this.#ctx.proxy.requestBuffering) void this.#readBody();
    else this.#next();
  }

  /** proxy_request_buffering on: the whole body first, then the first server is chosen. */
  async #readBody(): Promise<void> {
    const { proxy } = this.#ctx;
    const result = await readBufferedBody(this.#req, {
      maxBytes: proxy.clientMaxBodySizeBytes,
      memoryBytes: proxy.clientBodyBufferSizeBytes,
      timeoutMs: proxy.clientBodyTimeoutMs,
      tempPath: proxy.tempPath,
    });
    if (this.#done) {
      if (result.kind === 'complete') result.body.dispose();
      return;
    }
    switch (result.kind) {
      case 'complete':
        this.#body = result.body;
        if (result.body.tempFilePath !== undefined) {
          this.#logError('warn', `a client request body is buffered to a temporary file ${result.body.tempFilePath}`);
        }
        this.#next();
        return;
      case 'too_large':
        this.#onBodyTooLarge(result);
        return;
      case 'timeout':
        this.#logError('info', 'client timed out (110: Connection timed out) while reading client request body');
        this.#respondError(408);
        return;
      case 'temp_file_failed':
        this.#logTempFileFailure(result.error, 'reading client request body');
        this.#respondError(500);
        return;
      case 'client_closed':
        // The response's 'close' follows: logged as 499 by #onClientClose.
        return;
    }
  }

  /**
   * An upgrade request goes to the servers as any request does (same selection, retries
   * and passive health) once it has a slot of max_upgraded, taken now so that upgrades
   * waiting for their 101 count too.
   */
  #startUpgrade(): void {
    if (hasBody(this.#req)) {
      // node hands the connection over right after the request head: the body could not be
      // told apart from the new protocol's bytes. A WebSocket handshake never has one.
      this.#logError('info', 'client sent an upgrade request with a body, which is not supported');
      this.#respondError(501);
      return;
    }
    const noSlot = this.#ctx.tunnels.reserve();
    if (noSlot !== undefined) {
      if (noSlot === 'limit') {
        this.#logError('error', `upgraded connections limit of ${this.#ctx.tunnels.limit} reached (proxy.max_upgraded)`);
      }
      this.#respondError(503, noSlot === 'limit' ? MAX_UPGRADED_TEXT : STOPPING_TEXT);
      return;
    }
    this.#holdsTunnelSlot = true;
    this.#next();
  }

  // --- the retry loop ---------------------------------------------------------------

  #next(): void {
    const { group, queue } = this.#ctx;
    const peer = group.select(this.#peers, this.#pick);
    if (peer === undefined && queue !== undefined && group.waitsForSlot(this.#peers)) {
      this.#wait(queue);
      return;
    }
    if (peer === undefined) {
      this.#logError('error', 'no live upstreams while connecting to upstream', this.#ctx.group.name);
      this.#ctx.observer?.upstreamFailed(this.#ctx.group.name, 'no_live', 'no live upstreams');
      this.#tried.push({ addr: this.#ctx.group.name, status: '502', time: '0.000' });
      this.#respondError(502, NO_LIVE_TEXT);
      return;
    }
    this.#triesLeft--;
    this.#startAttempt(peer, this.#ctx.connections.acquire(peer));
  }

  /** Every server this request may use is at max_conns: wait for a slot (nginx Plus `queue`). */
  #wait(queue: RequestQueue): void {
    const queued: QueuedRequest = {
      canProceed: () => this.#ctx.group.canSelect(this.#peers) || !this.#ctx.group.waitsForSlot(this.#peers),
      proceed: () => {
        this.#queued = undefined;
        this.#next();
      },
      timedOut: () => {
        this.#queued = undefined;
        this.#logError('error', 'upstream queue timed out while connecting to upstream', this.#ctx.group.name);
        this.#tried.push({ addr: this.#ctx.group.name, status: '503', time: '0.000' });
        this.#respondError(503, QUEUE_TIMEOUT_TEXT);
      },
    };
    if (!queue.enter(queued)) {
      this.#logError('error', 'upstream queue is full while connecting to upstream', this.#ctx.group.name);
      this.#tried.push({ addr: this.#ctx.group.name, status: '503', time: '0.000' });
      this.#respondError(503, QUEUE_FULL_TEXT);
      return;
    }
    this.#queued = queued;
    this.#ctx.errorLog.debug({ request_id: this.#requestId, queued: queue.length }, 'request waits in the upstream queue');
  }

  #startAttempt(peer: Peer, connection: Connection): void {
    this.#ctx.observer?.attemptStarted(peer);
    const body = this.#body?.open() ?? null;
    const attempt = new Attempt(
      peer,
      {
        method: this.#req.method ?? 'GET',
        path: this.#req.url ?? '/',
        headers: upstreamRequestHeaders(this.#req, this.#ctx.requestRules, this.#vars, this.#body?.length),
        body,
        upgrade: this.#upgrade === undefined ? undefined : this.#req.headers.upgrade,
      },
      connection,
      this,
    );
    this.#attempt = attempt;
    if (body instanceof Readable) {
      watchSendTimeout(body, this.#ctx.proxy.sendTimeoutMs, () => {
        if (!attempt.settled) this.#failAttempt(attempt, new ProxyError('SOCKPROXY_SEND_TIMEOUT'));
      });
    }
  }

  /** Whether a failed attempt moves on to the next server (nginx ngx_http_upstream_next). */
  #mayTryNext(attempt: Attempt, cause: NextUpstreamCause): boolean {
    return shouldTryNext({
      cause,
      mask: this.#ctx.proxy.nextUpstream,
      method: this.#req.method ?? 'GET',
      requestSent: attempt.requestSent,
      triesLeft: this.#triesLeft,
      elapsedMs: performance.now() - this.#startedAt,
      nextUpstreamTimeoutMs: this.#ctx.proxy.nextUpstreamTimeoutMs,
      bodyReplayable: this.#body?.replayable ?? true,
    });
  }

  // --- attempt callbacks ------------------------------------------------------------

  onAttemptHeaders(attempt: Attempt, status: number, headers: IncomingHttpHeaders): void {
    const cause = statusCause(status, this.#ctx.proxy.nextUpstream);
    if (cause !== undefined && this.#mayTryNext(attempt, cause)) {
      // The response is dropped unread: its connection cannot be reused, so it is closed.
      attempt.abandon(new ProxyError('SOCKPROXY_NEXT_UPSTREAM'));
      this.#record(attempt, String(status));
      if (countsAsFailure(cause)) {
        this.#ctx.group.recordFailure(attempt.peer);
        this.#ctx.observer?.upstreamFailed(attempt.peer, status === 429 ? 'http_429' : 'http_5xx', `upstream sent status ${status}`);
      }
      this.#next();
      return;
    }
    this.#buffersResponse = buffersResponse(this.#ctx.proxy.buffering, headers);
    try {
      this.#res.writeHead(status, clientResponseHeaders(headers, this.#requestId));
    } catch {
      // A header value node will not send (ERR_INVALID_CHAR): nginx's invalid_header.
      this.#failAttempt(attempt, new ProxyError('SOCKPROXY_INVALID_HEADER'));
      return;
    }
    this.#status = status;
  }

  #bufferResponse(attempt: Attempt): ResponseBuffer {
    const { proxy } = this.#ctx;
    const limits = { memoryBytes: proxy.buffersBytes, fileBytes: proxy.maxTempFileSizeBytes, tempPath: proxy.tempPath };
    return new ResponseBuffer(this.#res, limits, {
      pauseUpstream: () => attempt.pause(),
      resumeUpstream: () => attempt.resume(),
      spilled: (path) =>
        this.#logError('warn', `an upstream response is buffered to a temporary file ${path} while reading upstream`, attempt.peer.name),
      delivered: () => this.#finish(),
      tempFileFailed: (error) => {
        this.#logTempFileFailure(error, 'reading upstream', attempt.peer.name);
        // The response has started: all that can be done is to make the truncation visible.
        if (!attempt.settled) attempt.abandon(new ProxyError('SOCKPROXY_TEMP_FILE_FAILED'));
        this.#res.destroy();
        this.#finish();
      },
    });
  }

  onAttemptData(attempt: Attempt, chunk: Buffer): void {
    this.#bytesSent += chunk.length;
    if (this.#responseBuffer !== undefined) {
      this.#responseBuffer.write(chunk);
      return;
    }
    if (this.#res.write(chunk) || this.#awaitingDrain) return;
    // The client reads slower than the upstream sends.
    if (this.#buffersResponse) {
      // Hold the rest for it, so that the upstream is free sooner.
      this.#responseBuffer = this.#bufferResponse(attempt);
    } else {
      // Stop reading the upstream. undici may still hand over what it had parsed, so wait
      // for one 'drain' only.
      this.#awaitingDrain = true;
      attempt.pause();
      this.#res.once('drain', () => {
        this.#awaitingDrain = false;
        attempt.resume();
      });
    }
  }

  onAttemptEnd(attempt: Attempt, trailers: IncomingHttpHeaders): void {
    this.#record(attempt, String(attempt.status));
    this.#ctx.group.recordSuccess(attempt.peer);
    this.#ctx.observer?.responseRead(attempt.peer, attempt.durationMs);
    if (this.#responseBuffer !== undefined) {
      // The upstream is done and its connection free; the client gets the rest from the buffer.
      this.#responseBuffer.end(trailers);
      return;
    }
    if (Object.keys(trailers).length > 0) this.#res.addTrailers(trailers as Record<string, string>);
    this.#res.end();
    this.#finish();
  }

  onAttemptError(attempt: Attempt, error: Error): void {
    const failure = classifyUpstreamError(error, attempt.phase, attempt.peer.name);
    if (
      !this.#res.headersSent &&
      attempt.lostKeepaliveRace(error, this.#req.method ?? 'GET') &&
      (this.#body?.replayable ?? true)
    ) {
      // Not the server's failure and not a try: the request goes again, on a new connection.
      this.#logError(
        'info',
        `upstream closed a reused keepalive connection (${failure.message}) while ${PHASE_ACTION[attempt.phase]}, retrying on a new connection`,
        attempt.peer.name,
      );
      this.#record(attempt, '-');
      this.#startAttempt(attempt.peer, this.#ctx.connections.acquire(attempt.peer, true));
      return;
    }
    this.#logUpstreamFailure(attempt.peer, failure, PHASE_ACTION[attempt.phase]);
    this.#ctx.observer?.upstreamFailed(attempt.peer, failure.kind, failure.message);
    this.#record(attempt, this.#res.headersSent ? String(attempt.status) : String(statusForCause(failure.kind)));

    if (this.#res.headersSent) {
      // Part of the response is already with the client: it cannot be retried or replaced.
      // Closing the connection makes the truncation visible (no terminating chunk, or
      // fewer bytes than Content-Length); nginx counts this as neither failure nor success.
      this.#res.destroy();
      this.#finish();
      return;
    }
    this.#ctx.group.recordFailure(attempt.peer);
    if (this.#mayTryNext(attempt, failure.kind)) {
      this.#next();
      return;
    }
    this.#respondError(statusForCause(failure.kind));
  }

  /**
   * The server switched protocols: from here on nothing is retried. The client gets the
   * 101 and the connection becomes a tunnel, logged (status 101) when it ends, as nginx
   * logs an upgraded request when it is finalized.
   */
  onAttemptUpgrade(attempt: Attempt, headers: IncomingHttpHeaders, upstream: Socket): void {
    const { socket, head } = this.#upgrade!;
    // The app answered: a success for passive health now, rather than when the tunnel ends
    // (nginx's moment), which could hold a probed server out for the tunnel's whole life.
    this.#ctx.group.recordSuccess(attempt.peer);
    this.#res.off('close', this.#onClientClose);
    this.#res.detachSocket(socket);
    socket.write(switchingProtocolsHead(headers, this.#requestId), 'latin1');
    this.#status = 101;
    // The tunnel holds a connection to the server until it ends: max_conns and least_conn count it.
    attempt.peer.active++;
    const { readTimeoutMs, sendTimeoutMs } = this.#ctx.proxy;
    const tunnel = new Tunnel(socket, upstream, head, { idleMs: readTimeoutMs, sendMs: sendTimeoutMs });
    // The slot is the tunnel's now: the registry gives it back when the tunnel ends.
    this.#holdsTunnelSlot = false;
    this.#ctx.tunnels.add(tunnel);
    void tunnel.ended.then((result) => this.#onTunnelEnd(attempt, result));
  }

  #onTunnelEnd(attempt: Attempt, result: TunnelResult): void {
    attempt.peer.active--;
    const report = describeTunnelEnding(result.ending);
    if (report !== undefined) this.#logError(report.level, `${report.message} while ${TUNNEL_ACTION}`, attempt.peer.name);
    // nginx's $body_bytes_sent and $upstream_response_time for an upgraded request cover the tunnel.
    this.#bytesSent = result.bytesToClient;
    this.#tried.push({ addr: attempt.peer.name, status: '101', time: formatSeconds(performance.now() - attempt.startedAt) });
    this.#finish();
  }

  /** Ends an attempt from our side for a reason that is the upstream's failure. */
  #failAttempt(attempt: Attempt, error: ProxyError): void {
    attempt.abandon(error);
    this.onAttemptError(attempt, error);
  }

  // --- client side --------------------------------------------------------------------

  /** A body without Content-Length grew past client_max_body_size while it was read. */
  readonly #onBodyTooLarge = (event: TooLarge): void => {
    if (this.#done) return;
    this.#logError('error', `client intended to send too large chunked body: ${event.bytes} bytes`);
    this.#attempt?.abandon(new ProxyError('SOCKPROXY_BODY_TOO_LARGE'));
    if (this.#attempt !== undefined) this.#record(this.#attempt, '-');
    if (this.#res.headersSent) {
      this.#res.destroy();
      this.#finish();
    } else {
      this.#respondError(413);
    }
  };

  /**
   * client_body_timeout while the body streams to the app (request_buffering off): nginx's
   * 408, logged as it logs the buffered case. The upstream request is aborted, so the app
   * never sees the body end, and, the client's fault, it is not counted against the server.
   */
  #onStreamedBodyTimeout(): void {
    if (this.#done) return;
    this.#logError('info', 'client timed out (110: Connection timed out) while reading client request body');
    this.#abortForClientBody(408);
  }

  /**
   * The chunked body turned out malformed after the head was accepted: nginx answers 400
   * and logs "client sent invalid chunked body" at [error], as it logs a too large body
   * (ngx_http_request_body_chunked_filter), then closes the connection. A body streaming
   * to the app (request_buffering off) is cut off there: the upstream request is aborted,
   * so the app never sees it end, and, the client's fault, it is not counted against the
   * server. A response already under way can only be cut short.
   */
  bodyMalformed(): void {
    if (this.#done) return;
    this.#logError('error', 'client sent invalid chunked body');
    this.#abortForClientBody(400);
  }

  /** The client's body failed (`status`: 400 malformed, 408 timed out): the upstream request is aborted, the client answered. */
  #abortForClientBody(status: 400 | 408): void {
    const attempt = this.#attempt;
    if (attempt !== undefined && !attempt.abandoned && !attempt.settled) {
      attempt.abandon(new ProxyError(status === 400 ? 'SOCKPROXY_BODY_MALFORMED' : 'SOCKPROXY_BODY_TIMEOUT'));
      this.#record(attempt, '-');
    }
    // A response already under way can only be cut short.
    if (this.#res.headersSent) {
      this.#res.destroy();
      this.#finish();
      return;
    }
    this.#respondError(status);
  }

  readonly #onClientClose = (): void => {
    if (this.#done) return;
    // The client went away first: abort the upstream request; not the server's fault,
    // so nothing is counted against it (nginx logs 499).
    const attempt = this.#attempt;
    if (attempt !== undefined && !attempt.abandoned && !attempt.settled) {
      attempt.abandon(new ProxyError('SOCKPROXY_CLIENT_CLOSED'));
      this.#record(attempt, '-');
      this.#logError(
        'info',
        `client prematurely closed connection, so upstream connection is closed too while ${PHASE_ACTION[attempt.phase]}`,
        attempt.peer.name,
      );
    }
    if (this.#queued !== undefined) {
      this.#logError('info', 'client prematurely closed connection while waiting in the upstream queue');
    }
    this.#status = CLIENT_CLOSED_REQUEST;
    this.#finish();
  };

  // --- responses and logs -------------------------------------------------------------

  #respondError(status: number, text = ERROR_TEXT[status] ?? STATUS_CODES[status] ?? 'Error'): void {
    const body = `${status} ${text}\nrequest_id: ${this.#requestId}\n`;
    // An answer before the body was read in full (a 413, a 408, a malformed body): the
    // connection is closed after it, and the answer says so, as nginx's does
    // (r->keepalive = 0), rather than promise a keep-alive that will not come.
    const bodyUnread = hasBody(this.#req) && !this.#req.complete;
    if (bodyUnread) this.#res.shouldKeepAlive = false;
    this.#status = status;
    this.#bytesSent = Buffer.byteLength(body);
    this.#res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': this.#bytesSent,
      'x-request-id': this.#requestId,
    });
    // With `Connection: close` node would destroy the socket once the answer is written
    // (its `_last`), and the kernel would answer the body still coming with a reset that
    // can cost the client the answer. The lingering close (#closeLingering) ends it instead.
    if (bodyUnread) (this.#res as ServerResponse & { _last: boolean })._last = false;
    this.#res.end(body);
    this.#finish();
  }

  /**
   * nginx's lingering close, for an answer given before the client finished its body (a
   * 413, a 408, an early answer from the app, an error): once the answer is out, end our
   * side of the connection, and read and drop what the client still sends.
   */
  #closeLingering(): void {
    const socket = this.#req.socket;
    discardRestOfBody(this.#req);
    if (this.#res.writableFinished) socket.end();
    else this.#res.once('finish', () => socket.end());
  }

  #record(attempt: Attempt, status: string): void {
    this.#tried.push({ addr: attempt.peer.name, status, time: formatSeconds(attempt.durationMs) });
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#holdsTunnelSlot) {
      this.#holdsTunnelSlot = false;
      this.#ctx.tunnels.release();
    }
    // Answered while waiting (the client went away, a body too large): the queue forgets it.
    if (this.#queued !== undefined) this.#ctx.queue?.leave(this.#queued);
    this.#queued = undefined;
    this.#body?.dispose();
    this.#responseBuffer?.dispose();
    // Only a body can be left unread: a bodiless request answered at once (no live
    // upstreams) is not yet marked complete by node's parser, and closing its connection
    // after a keep-alive response would leave the client's next request unanswered.
    if (hasBody(this.#req) && !this.#req.complete) this.#closeLingering();
    this.#res.off('close', this.#onClientClose);
    this.#ctx.observer?.requestFinished(this.#status, this.#tried.at(-1)?.addr ?? '-');
    const log = this.#ctx.accessLog;
    if (log === undefined) return;
    const entry: AccessEntry = {
      remote_addr: remoteAddr(this.#req),
      request_method: this.#req.method ?? '',
      request_uri: this.#req.url ?? '',
      status: this.#status,
      body_bytes_sent: this.#bytesSent,
      request_time: seconds(performance.now() - this.#startedAt),
      upstream_addr: this.#tried.map((t) => t.addr).join(', ') || '-',
      upstream_status: this.#tried.map((t) => t.status).join(', ') || '-',
      upstream_response_time: this.#tried.map((t) => t.time).join(', ') || '-',
      request_id: this.#requestId,
    };
    log.info(entry);
  }

  /** nginx logs these at [crit]: the disk is full or the temp directory is not writable. */
  #logTempFileFailure(error: NodeJS.ErrnoException, action: string, upstream?: string): void {
    const call =
      error.path === undefined ? `${error.syscall ?? 'write'}() to a temporary file` : `${error.syscall ?? 'open'}() "${error.path}"`;
    this.#logError('error', `${call} failed (${describeErrno(error)}) while ${action}`, upstream, { nginx_level: 'crit' });
  }

  #logUpstreamFailure(peer: Peer, failure: UpstreamFailure, action: string): void {
    this.#logError('error', `${failure.message} while ${action}`, peer.name, { nginx_level: failure.severity });
  }

  /**
   * One error-log line in nginx's shape: "<message>, client: …, request: "…", upstream: "…",
   * host: "…"", plus the same facts as fields.
   */
  #logError(level: 'error' | 'warn' | 'info', message: string, upstream?: string, extra?: object): void {
    const req = this.#req;
    const request = `${req.method} ${req.url} HTTP/${req.httpVersion}`;
    const upstreamUrl = upstream === undefined ? undefined : `http://${upstream}${upstream.startsWith('unix:') ? ':' : ''}${req.url}`;
    let line = `${message}, client: ${remoteAddr(req)}, request: "${request}"`;
    if (upstreamUrl !== undefined) line += `, upstream: "${upstreamUrl}"`;
    if (req.headers.host !== undefined) line += `, host: "${req.headers.host}"`;
    this.#ctx.errorLog[level]({ upstream_addr: upstream, request_id: this.#requestId, ...extra }, line);
  }
}

/**
 * proxy_buffering, which the upstream may switch for one response with X-Accel-Buffering
 * (yes/no); a stream of events (text/event-stream) is never held back.
 */
function buffersResponse(configured: boolean, headers: IncomingHttpHeaders): boolean {
  const accel = String(headers['x-accel-buffering'] ?? '').toLowerCase();
  const on = accel === 'yes' ? true : accel === 'no' ? false : configured;
  return on && !String(headers['content-type'] ?? '').toLowerCase().startsWith('text/event-stream');
}

/**
 * RFC 9112 §6.3: a request has a body when it carries Content-Length (other than 0) or
 * Transfer-Encoding.
 */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}
