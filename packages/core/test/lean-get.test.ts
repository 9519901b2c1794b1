import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestError, SluiceError } from '../src/errors.js';
import { createLeanGet, type LeanAnswer, leanBody } from '../src/lean-get.js';
import { retrying } from '../src/retry.js';

const BODY = Buffer.from('0123456789abcdefghij');

async function text(body: AsyncIterable<Uint8Array>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString();
}

/** Names an answer as a connector would: retryable as Google's APIs ask. */
const fail = (answer: LeanAnswer | Error) =>
  answer instanceof Error
    ? requestError(answer, { connector: 'test', what: 'x', unreachable: 'check the network' })
    : requestError(new Error(answer.body), {
        connector: 'test',
        what: 'x',
        status: answer.status,
        reason: /"reason":"(\w+)"/.exec(answer.body)?.[1],
        unreachable: 'check the network',
      });

describe('lean GETs', () => {
  let server: Server;
  let origin: URL;
  /** Answers the next requests get, in order, before the real body. */
  let script: Array<(res: ServerResponse) => void> = [];
  let requests = 0;
  /** What the server does with a request once the script is done. */
  let serve: (req: IncomingMessage, res: ServerResponse) => void;
  const plain = (req: IncomingMessage, res: ServerResponse) => {
    const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
    if (!range) return res.writeHead(200).end(BODY);
    const start = Number(range[1]);
    const end = range[2] ? Number(range[2]) : BODY.length - 1;
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${BODY.length}` });
    res.end(BODY.subarray(start, end + 1));
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests++;
      const next = script.shift();
      if (next) next(res);
      else serve(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const reset = (steps: Array<(res: ServerResponse) => void>, then = plain) => {
    script = steps;
    serve = then;
    requests = 0;
  };
  const answer = (status: number, body = '', headers: Record<string, string> = {}) => {
    return (res: ServerResponse) => res.writeHead(status, headers).end(body);
  };
  const reason = (status: number, why: string) =>
    answer(status, JSON.stringify({ error: { code: status, errors: [{ reason: why }] } }));

  it('retries throttling and server errors, a Retry-After included, then reads the body', async () => {
    reset([
      answer(503, 'busy'),
      answer(429, 'slow down', { 'retry-after': '0' }),
      reason(403, 'userRateLimitExceeded'),
      reason(403, 'rateLimitExceeded'),
    ]);
    const lean = createLeanGet(origin, 2);
    const seen: number[] = [];
    const response = await lean.fetch('/o', () => ({}), {
      baseMs: 1,
      fail: (a) => {
        if (!(a instanceof Error)) seen.push(a.status);
        return fail(a);
      },
    });
    expect(await text(response)).toBe(BODY.toString());
    expect(seen).toEqual([503, 429, 403, 403]);
    expect(requests).toBe(5);
    lean.close();
  });

  it('gives up at once on an answer no retry can help, with its body for the message', async () => {
    reset([reason(403, 'forbidden')]);
    const lean = createLeanGet(origin, 2);
    await expect(lean.fetch('/o', () => ({}), { baseMs: 1, fail })).rejects.toMatchObject({
      message: 'x: {"error":{"code":403,"errors":[{"reason":"forbidden"}]}}',
      retryable: false,
    });
    expect(requests).toBe(1);
    lean.close();
  });

  it('throws the last failure as not retryable once the retries are spent', async () => {
    reset([], (_req, res) => res.writeHead(500).end('down'));
    const lean = createLeanGet(origin, 2);
    const error = await lean
      .fetch('/o', () => ({}), { retries: 2, baseMs: 1, fail })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SluiceError);
    expect(error).toMatchObject({ code: 'IO', retryable: false });
    expect(requests).toBe(3);
    lean.close();
  });

  it('keeps the range a server ignored, and decodes a gzip-encoded body', async () => {
    const lean = createLeanGet(origin, 2);
    // A server that answers every GET with the whole body (200), Range or not.
    reset([], (_req, res) => res.writeHead(200).end(BODY));
    const whole = await lean.fetch('/o', () => ({ range: 'bytes=5-' }), { fail });
    expect(await text(leanBody(whole, { start: 5 }))).toBe('56789abcdefghij');
    const slice = await lean.fetch('/o', () => ({ range: 'bytes=5-9' }), { fail });
    expect(await text(leanBody(slice, { start: 5, end: 9 }))).toBe('56789');
    // One that honours it.
    reset([]);
    const ranged = await lean.fetch('/o', () => ({ range: 'bytes=5-' }), { fail });
    expect(await text(leanBody(ranged, { start: 5 }))).toBe('56789abcdefghij');
    // gzip on the wire: decoded, then cut to the range.
    reset([], (_req, res) =>
      res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(BODY)),
    );
    const gzip = await lean.fetch('/o', () => ({}), { fail });
    expect(await text(leanBody(gzip, { start: 10 }))).toBe('abcdefghij');
    lean.close();
  });

  it('refuses a partial answer that does not start where the read does', async () => {
    reset([], (_req, res) =>
      res.writeHead(206, { 'content-range': `bytes 0-19/${BODY.length}` }).end(BODY),
    );
    const lean = createLeanGet(origin, 2);
    const response = await lean.fetch('/o', () => ({ range: 'bytes=5-' }), { fail });
    expect(() => leanBody(response, { start: 5 })).toThrow(/bytes 0-19\/20 for a read from byte 5/);
    response.resume();
    lean.close();
  });
});

describe('retries', () => {
  it('marks a 403 rate limit retryable, and a 403 refusal not', () => {
    const options = { connector: 'test', what: 'x', unreachable: 'u' };
    expect(
      requestError(new Error('slow'), { ...options, status: 403, reason: 'userRateLimitExceeded' })
        .retryable,
    ).toBe(true);
    expect(
      requestError(new Error('no'), { ...options, status: 403, reason: 'forbidden' }).retryable,
    ).toBe(false);
  });

  it('stops when the signal aborts, without waiting out the backoff', async () => {
    const abort = new AbortController();
    let attempts = 0;
    const started = Date.now();
    const run = retrying(
      async () => {
        attempts++;
        throw new SluiceError('busy', { code: 'IO', retryable: true });
      },
      { baseMs: 10_000, signal: abort.signal },
    );
    setTimeout(() => abort.abort(), 50);
    await expect(run).rejects.toThrow();
    expect(attempts).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
