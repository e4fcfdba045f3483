import { readdirSync, readlinkSync } from 'node:fs';

/**
 * The files a process has open under `dir`, from /proc/PID/fd. An unlinked temp file
 * shows as "<path> (deleted)": it exists only as long as the descriptor does.
 */
export function openFilesIn(pid: number, dir: string): string[] {
  return readdirSync(`/proc/${pid}/fd`)
    .map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        // Closed between the listing and the read.
        return '';
      }
    })
    .filter((target) => target.startsWith(`${dir}/`));
}
