import { describe, expect, it } from 'vitest';
import type { HeaderTemplate } from '../../../src/config/types.js';
import { compileTemplate, isKnownVariable, KNOWN_VARIABLES } from '../../../src/config/variables.js';

describe('compileTemplate (ngx_http_script_compile)', () => {
  it.each<[string, HeaderTemplate]>([
    ['', []],
    ['upgrade', ['upgrade']],
    ['$remote_addr', [{ variable: 'remote_addr' }]],
    ['for=$remote_addr;x', ['for=', { variable: 'remote_addr' }, ';x']],
    ['${scheme}s://$host', [{ variable: 'scheme' }, 's://', { variable: 'host' }]],
    ['$host:$server_port', [{ variable: 'host' }, ':', { variable: 'server_port' }]],
    ['$http_upgrade', [{ variable: 'http_upgrade' }]],
    ['$http_x_forwarded_proto', [{ variable: 'http_x_forwarded_proto' }]],
    ['$proxy_add_x_forwarded_for', [{ variable: 'proxy_add_x_forwarded_for' }]],
    ['$scheme$request_uri', [{ variable: 'scheme' }, { variable: 'request_uri' }]],
    // nginx stores variable names lower-cased
    ['$Remote_Addr', [{ variable: 'remote_addr' }]],
    ['a-$uri-b', ['a-', { variable: 'uri' }, '-b']],
  ])('%j', (text, template) => {
    expect(compileTemplate(text)).toEqual(template);
  });

  it.each<[string, string]>([
    ['$foo', 'unknown "foo" variable'],
    ['x $remote_addrx', 'unknown "remote_addrx" variable'],
    ['$http_', 'unknown "http_" variable'],
    ['$1', 'unknown "1" variable'],
    ['$', 'invalid variable name in "$"'],
    ['a$ b', 'invalid variable name in "a$ b"'],
    ['${}', 'invalid variable name in "${}"'],
    ['x${', 'invalid variable name in "x${"'],
    ['${host', 'the closing bracket in "host" variable is missing'],
    ['${host-x}', 'the closing bracket in "host" variable is missing'],
  ])('%j → %s', (text, error) => {
    expect(compileTemplate(text)).toEqual({ error });
  });

  it('returns a frozen template', () => {
    const template = compileTemplate('for=$remote_addr') as HeaderTemplate;
    expect(Object.isFrozen(template)).toBe(true);
    expect(Object.isFrozen(template[1])).toBe(true);
  });
});

describe('KNOWN_VARIABLES', () => {
  it.each(['remote_addr', 'http_host', 'http_x_request_id', 'proxy_host', 'request_id'])('%s is known', (name) => {
    expect(isKnownVariable(name)).toBe(true);
  });

  it('lists the fourteen named variables', () => {
    expect(KNOWN_VARIABLES.size).toBe(14);
  });
});
