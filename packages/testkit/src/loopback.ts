// The HTTP plumbing every API server of the test kit shares (Cloud Storage, Drive,
// Confluence): listening on loopback, stopping at once, request bodies and JSON answers.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** A request's whole body. */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A JSON answer, as the APIs send it. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=UTF-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/**
 * A server on a loopback port (0: a free one). A request handler that throws gets `fail` to
 * answer, or the connection dropped when the answer had already begun; `close` stops at
 * once, open connections included.
 */
export abstract class LoopbackServer {
  private server: Server | undefined;
  private baseUrl = '';

  /** Base URL once listening, e.g. http://127.0.0.1:PORT (no trailing slash). */
  get url(): string {
    return this.baseUrl;
  }

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;

  /** Answers a request whose handler threw, with the API's error body. */
  protected abstract fail(res: ServerResponse, error: unknown): void;

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (res.headersSent) res.destroy();
        else this.fail(res, error);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    this.server = server;
    this.baseUrl = `http://${host}:${(server.address() as { port: number }).port}`;
    return this.baseUrl;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
