import { describe, expect, it } from 'vitest';
import { compileTemplate } from '../../../src/config/variables.js';
import { healthCheckHost } from '../../../src/forward/health-checks.js';

function hostRule(value: string) {
  const template = compileTemplate(value);
  if ('error' in template) throw new Error(template.error);
  return { name: 'host', template };
}

describe('healthCheckHost: the Host header of the checks', () => {
  it('is the upstream name, nginx\'s $proxy_host, by default', () => {
    expect(healthCheckHost('app_server', [])).toBe('app_server');
  });

  it('is a set_header Host written without variables', () => {
    expect(healthCheckHost('app_server', [hostRule('www.example.com')])).toBe('www.example.com');
  });

  it('is the upstream name when set_header Host has variables (a check has no client request) or removes it', () => {
    expect(healthCheckHost('app_server', [hostRule('$host')])).toBe('app_server');
    expect(healthCheckHost('app_server', [hostRule('$host.internal')])).toBe('app_server');
    expect(healthCheckHost('app_server', [hostRule('')])).toBe('app_server');
  });
});
