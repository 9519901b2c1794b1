// Which process on which machine a run belongs to, so that a later run can tell a crashed run
// (its process gone) from one still working.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

let host: string | undefined;

/** This machine: its host name and, on Linux, its boot id (containers may share a host name). */
export function hostIdentity(): string {
  if (host === undefined) {
    let boot = '';
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      // not Linux: the host name alone
    }
    host = boot ? `${hostname()}#${boot}` : hostname();
  }
  return host;
}

/** Whether a process with this pid runs here (one of another user counts as running). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a run that recorded this host and pid is certainly gone: it ran here, and its process no longer does. */
export function ownerGone(owner: { host?: unknown; pid?: unknown }): boolean {
  return owner.host === hostIdentity() && typeof owner.pid === 'number' && !processAlive(owner.pid);
}
