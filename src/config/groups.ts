import { readFileSync } from 'node:fs';

/**
 * A group's id by name or number, from /etc/group as getgrnam(3) reads it for local groups
 * (Node has no getgrnam). Groups only known to NSS modules such as LDAP are not found
 * there: a numeric gid works for those.
 */
export function groupId(group: string, groupFile = '/etc/group'): number | undefined {
  if (/^\d+$/.test(group)) return Number(group);
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}
