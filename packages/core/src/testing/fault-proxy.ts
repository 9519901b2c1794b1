import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One kind of fault, applied to the matching requests it is due for. */
export interface FaultRule {
  /** Which requests it applies to (default: all). */
  match?: (request: { method: string; url: string }) => boolean;
  /** Apply to every n-th matching request, the first included (default 1: every one). */
  every?: number;
  /** Stop after injecting this many faults (default: no limit). */
  times?: number;
  /** Answer with this status and an error body instead of forwarding (429, 500, 503 ...). */
  status?: number;
  /** Body of that answer; default: an S3-style XML error matching the status. */
  body?: string;
  /** Wait this long before forwarding (or answering). */
  delayMs?: number;
  /** Forward, then cut the connection after this many bytes of the response body. */
  cutAfterBytes?: number;
  /**
   * Forward without the Range header, as a server that ignores Range does (Cloud Storage when it
   * decompresses, some S3-compatible stores and proxies): the answer is 200 with the whole body.
   */
  ignoreRange?: boolean;
}

/** A running fault-injection proxy in front of a local server. */
export interface FaultProxy {
  /** Base URL to give clients instead of the server's, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Faults injected so far. */
  readonly injected: number;
  /** Replaces the rules (counters start again). */
  setRules(rules: FaultRule[]): void;
  close(): Promise<void>;
}

const S3_ERRORS: Record<number, [code: string, message: string]> = {
  429: ['SlowDown', 'Please reduce your request rate.'],
  500: ['InternalError', 'We encountered an internal error. Please try again.'],
  503: ['SlowDown', 'Please reduce your request rate.'],
};

function errorBody(status: number): string {
  const [code, message] = S3_ERRORS[status] ?? ['InternalError', 'Injected fault.'];
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>sluice-fault</RequestId></Error>`;
}

/**
 * Starts an HTTP proxy on 127.0.0.1 (random port) in front of `target`, injecting error
 * responses, latency and connections cut midway through a body, as the rules say.
 */
export async function startFaultProxy(
  target: string,
  rules: FaultRule[] = [],
): Promise<FaultProxy> {
  const upstream = new URL(target);
  let active = rules;
  let seen = new Map<FaultRule, number>();
  let applied = new Map<FaultRule, number>();
  let injected = 0;
  /** The proxy's own origin, once it listens. */
  let self = '';

  const due = (req: IncomingMessage): FaultRule | undefined => {
    const info = { method: req.method ?? 'GET', url: req.url ?? '/' };
    for (const rule of active) {
      if (rule.match && !rule.match(info)) continue;
      const n = (seen.get(rule) ?? 0) + 1;
      seen.set(rule, n);
      if ((n - 1) % (rule.every ?? 1) !== 0) continue;
      if (rule.times !== undefined && (applied.get(rule) ?? 0) >= rule.times) continue;
      applied.set(rule, (applied.get(rule) ?? 0) + 1);
      return rule;
    }
    return undefined;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, rule?: FaultRule) => {
    const cutAfter = rule?.cutAfterBytes;
    const headers = { ...req.headers, host: upstream.host };
    if (rule?.ignoreRange) delete headers.range;
    const outgoing = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers,
      },
      (answer) => {
        // As a reverse proxy does: a Location on the server (a resumable upload session)
        // points back through the proxy, so the requests that follow get faults too.
        const location = answer.headers.location;
        if (location?.startsWith(upstream.origin)) {
          answer.headers.location = `${self}${location.slice(upstream.origin.length)}`;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (cutAfter === undefined) {
          answer.pipe(res);
          return;
        }
        let sent = 0;
        answer.on('data', (chunk: Buffer) => {
          if (sent >= cutAfter) return;
          const part = chunk.subarray(0, cutAfter - sent);
          sent += part.length;
          if (sent < cutAfter) {
            res.write(part);
            return;
          }
          answer.destroy();
          // Headers and the first bytes reach the client, then the connection drops mid-body.
          res.write(part, () => res.socket?.destroy());
        });
        answer.on('end', () => res.end());
      },
    );
    outgoing.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(outgoing);
  };

  const server = createServer((req, res) => {
    const rule = due(req);
    const act = () => {
      if (rule?.status !== undefined) {
        injected++;
        req.resume(); // drain the upload before answering
        req.on('end', () => {
          const body = rule.body ?? errorBody(rule.status as number);
          res.writeHead(rule.status as number, {
            'Content-Type': rule.body ? 'application/json' : 'application/xml',
            'Content-Length': Buffer.byteLength(body),
          });
          res.end(body);
        });
        return;
      }
      const ignored = rule?.ignoreRange && req.headers.range !== undefined;
      if (rule?.cutAfterBytes !== undefined || rule?.delayMs !== undefined || ignored) injected++;
      forward(req, res, rule);
    };
    if (rule?.delayMs) setTimeout(act, rule.delayMs);
    else act();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  self = `http://127.0.0.1:${port}`;
  return {
    url: self,
    get injected() {
      return injected;
    },
    setRules(next) {
      active = next;
      seen = new Map();
      applied = new Map();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
