import type { IncomingMessage } from 'node:http';
import type { HeaderTemplate } from '../config/types.js';
import { clientAddress } from '../server/client-address.js';

/** What nginx variables are evaluated from, for one request. */
export interface VariableContext {
  readonly req: IncomingMessage;
  /** $request_id: the client's X-Request-Id when it sent one, generated otherwise. */
  readonly requestId: string;
  /** $proxy_host: the upstream block's name, as nginx sets it for `proxy_pass http://name`. */
  readonly proxyHost: string;
}

/** The value of one nginx variable (names as in ngx_http_variables.c); "" when unset. */
export function variableValue(name: string, context: VariableContext): string {
  const { req } = context;
  switch (name) {
    case 'remote_addr':
      return remoteAddr(req);
    case 'remote_port':
      return req.socket.remotePort?.toString() ?? '';
    case 'server_addr':
      return req.socket.localAddress ?? 'unix:';
    case 'server_port':
      return req.socket.localPort?.toString() ?? '';
    case 'host':
      return hostVariable(req);
    case 'scheme':
      return 'http';
    case 'request_method':
      return req.method ?? '';
    case 'request_uri':
      return req.url ?? '';
    case 'uri':
      return (req.url ?? '').split('?', 1)[0]!;
    case 'args': {
      const url = req.url ?? '';
      const query = url.indexOf('?');
      return query === -1 ? '' : url.slice(query + 1);
    }
    case 'request_id':
      return context.requestId;
    case 'proxy_host':
      return context.proxyHost;
    case 'proxy_add_x_forwarded_for':
      return proxyAddXForwardedFor(req);
    default:
      if (name.startsWith('http_')) return headerValue(req, name.slice(5).replaceAll('_', '-'));
      return '';
  }
}

export function renderTemplate(template: HeaderTemplate, context: VariableContext): string {
  let value = '';
  for (const part of template) value += typeof part === 'string' ? part : variableValue(part.variable, context);
  return value;
}

/** $remote_addr of the request's connection. */
export function remoteAddr(req: IncomingMessage): string {
  return clientAddress(req.socket);
}

/**
 * $proxy_add_x_forwarded_for (ngx_http_proxy_add_x_forwarded_for_variable): every
 * X-Forwarded-For line the client sent, joined by ", ", then the client's address.
 */
function proxyAddXForwardedFor(req: IncomingMessage): string {
  const forwarded = headerValue(req, 'x-forwarded-for');
  return forwarded === '' ? remoteAddr(req) : `${forwarded}, ${remoteAddr(req)}`;
}

/** $host: the Host header without its port, lower-cased, else the address the request came in on. */
function hostVariable(req: IncomingMessage): string {
  const host = req.headers.host;
  if (host === undefined || host === '') return req.socket.localAddress ?? 'localhost';
  const withoutPort = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':', 1)[0]!;
  return withoutPort.toLowerCase();
}

function headerValue(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  if (value === undefined) return '';
  return Array.isArray(value) ? value.join(', ') : value;
}
