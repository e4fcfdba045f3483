import { expect } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';

/** The message of the ConfigError that parseConfig throws for `source`, read as file `file`. */
export function configErrorOf(source: string, file = 'bad.yaml'): string {
  try {
    parseConfig(source, file);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error('parseConfig accepted the configuration');
}
