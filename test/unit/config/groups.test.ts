import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { groupId } from '../../../src/config/groups.js';
import { parseSocketFileParameters } from '../../../src/config/listen.js';
import { makeTempDir, type TempDir } from '../../helpers/temp.js';

describe('groupId', () => {
  let tmp: TempDir;
  beforeEach(() => {
    tmp = makeTempDir();
  });
  afterEach(() => tmp.remove());

  it('reads a name from a group file, takes a number as it is, and misses what is not there', () => {
    const file = tmp.path('group');
    writeFileSync(file, 'root:x:0:\nwww-data:x:33:\nbroken-line\nsockets:x:1001:alice,bob\n');
    expect(groupId('www-data', file)).toBe(33);
    expect(groupId('sockets', file)).toBe(1001);
    expect(groupId('2000', file)).toBe(2000);
    expect(groupId('www', file)).toBeUndefined();
    expect(groupId('sockets', tmp.path('missing'))).toBeUndefined();
  });
});

describe('parseSocketFileParameters', () => {
  it('takes octal modes with or without the leading 0, and a group', () => {
    expect(parseSocketFileParameters(['mode=0660', 'group=www-data'])).toEqual({ mode: 0o660, group: 'www-data' });
    expect(parseSocketFileParameters(['mode=600'])).toEqual({ mode: 0o600 });
    expect(parseSocketFileParameters([])).toEqual({});
  });

  it.each([['mode=0999'], ['mode=rw'], ['mode=01777'], ['mode'], ['group='], ['backlog=511'], ['reuseport']])(
    'refuses %s',
    (token) => {
      expect(parseSocketFileParameters([token])).toHaveProperty('error');
    },
  );
});
