/**
 * Errors sockproxy raises itself on the request path, to abort an upstream attempt with
 * a reason. Code branches on the stable `code`, never on the message (as undici's errors).
 */
const MESSAGES = {
  SOCKPROXY_CLIENT_CLOSED: 'client closed the connection',
  SOCKPROXY_NEXT_UPSTREAM: 'response discarded: trying the next upstream server',
  SOCKPROXY_SEND_TIMEOUT: 'upstream did not read the request body within proxy_send_timeout',
  SOCKPROXY_INVALID_HEADER: 'upstream sent a header that cannot be forwarded',
  SOCKPROXY_BODY_TOO_LARGE: 'request body larger than client_max_body_size',
  SOCKPROXY_BODY_MALFORMED: 'client sent invalid chunked body',
  SOCKPROXY_BODY_TIMEOUT: 'client timed out while sending the request body',
  SOCKPROXY_TEMP_FILE_FAILED: 'the response could not be held in a temp file',
} as const;

export type ProxyErrorCode = keyof typeof MESSAGES;

export class ProxyError extends Error {
  readonly code: ProxyErrorCode;

  constructor(code: ProxyErrorCode) {
    super(MESSAGES[code]);
    this.name = 'ProxyError';
    this.code = code;
  }
}
