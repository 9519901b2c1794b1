import { debuglog, format } from 'node:util';
import { hasUserinfo, redact, usageError } from './errors.js';

/**
 * `util.debuglog(section)` whose lines go through {@link redact}: a connector's debug logging
 * (`NODE_DEBUG=sluice:s3`) may print endpoints and URLs, never what they hold of credentials.
 */
export function debugLog(section: string): ((message: string, ...args: unknown[]) => void) & {
  readonly enabled: boolean;
} {
  const log = debuglog(section);
  const write = (message: string, ...args: unknown[]) => {
    if (log.enabled) log('%s', redact(format(message, ...args)));
  };
  return Object.defineProperty(write, 'enabled', { get: () => log.enabled }) as typeof write & {
    readonly enabled: boolean;
  };
}

/**
 * Checks the URL of a service given in a flag or an environment variable (`name`, e.g.
 * `CONFLUENCE_URL (or --site)`): an http(s) URL by default, or `host:port` with `bare`, and
 * never one holding credentials, which are refused without being printed.
 */
export function serviceUrl(
  value: string,
  name: string,
  options: { example: string; bare?: boolean },
): string {
  const given = value.trim();
  if (hasUserinfo(given)) {
    throw usageError(
      `${name} holds credentials in the URL (user:password@): they are not accepted there`,
      `give the URL without them (e.g. ${options.example}); credentials go in the variables or files the connector reads`,
    );
  }
  if (options.bare && !/^[a-z][a-z0-9+.-]*:\/\//i.test(given)) return given;
  let url: URL | undefined;
  try {
    url = new URL(given);
  } catch {}
  if (!url || !/^https?:$/.test(url.protocol)) {
    throw usageError(`${name}: not an http(s) URL: ${given}`, `e.g. ${options.example}`);
  }
  return given;
}
