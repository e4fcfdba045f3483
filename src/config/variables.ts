import type { HeaderTemplate } from './types.js';

/**
 * The nginx variables a proxy_set_header value may use, besides `$http_<name>` (a request
 * header, `-` written as `_`). nginx fails at load on any other name, and so do we.
 */
export const KNOWN_VARIABLES: ReadonlySet<string> = new Set([
  'remote_addr',
  'remote_port',
  'host',
  'http_host',
  'scheme',
  'request_uri',
  'request_id',
  'proxy_add_x_forwarded_for',
  'proxy_host',
  'server_port',
  'request_method',
  'uri',
  'args',
  'server_addr',
]);

/** True for a name in KNOWN_VARIABLES or `http_<name>` (ngx_http_variable_unknown_header's prefix). */
export function isKnownVariable(name: string): boolean {
  return KNOWN_VARIABLES.has(name) || /^http_[A-Za-z0-9_]+$/.test(name);
}

/**
 * Compiles a proxy_set_header value as ngx_http_script_compile does: `$name` takes the
 * longest run of [A-Za-z0-9_], `${name}` delimits it from following text. nginx has no
 * escape for a literal `$`. Names are lower-cased, as ngx_http_get_variable_index stores
 * them. "" compiles to [], which means "do not send the header".
 */
export function compileTemplate(text: string): HeaderTemplate | { error: string } {
  const parts: Array<string | { readonly variable: string }> = [];
  const reference = /\$(?:\{([A-Za-z0-9_]*)(\}?)|([A-Za-z0-9_]*))/g;
  let literalStart = 0;
  for (let match = reference.exec(text); match !== null; match = reference.exec(text)) {
    const [, braced, closing, bare] = match;
    // ngx_http_script_compile: "${" ending the value is an invalid name, "${x" an unclosed one.
    const endsAtBrace = braced === '' && reference.lastIndex === text.length;
    if (braced !== undefined && closing === '' && !endsAtBrace) {
      return { error: `the closing bracket in "${braced}" variable is missing` };
    }
    const name = (braced ?? bare ?? '').toLowerCase();
    if (name === '') return { error: `invalid variable name in "${text}"` };
    if (!isKnownVariable(name)) return { error: `unknown "${name}" variable` };
    if (match.index > literalStart) parts.push(text.slice(literalStart, match.index));
    parts.push(Object.freeze({ variable: name }));
    literalStart = reference.lastIndex;
  }
  if (literalStart < text.length) parts.push(text.slice(literalStart));
  return Object.freeze(parts);
}
