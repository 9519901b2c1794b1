import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestError } from '../src/errors.js';
import { isTransient, retryAfterMs, retryWait, sendWithRetry } from '../src/retry.js';

describe('REST retries', () => {
  it('retries throttling for every method, gateway errors only where repeating is safe, 500 never', () => {
    expect(isTransient(429, 'POST')).toBe(true);
    expect(isTransient(503, 'GET')).toBe(true);
    expect(isTransient(503, 'POST')).toBe(false);
    expect(isTransient(500, 'GET')).toBe(false);
    expect(isTransient(404, 'GET')).toBe(false);
  });

  it('reads the wait from Retry-After (seconds or a date), else from X-RateLimit-Reset', () => {
    const now = Date.parse('2026-03-02T10:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': '7' }), now)).toBe(7000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Mon, 02 Mar 2026 10:00:30 GMT' }), now)).toBe(
      30_000,
    );
    expect(retryAfterMs(new Headers({ 'x-ratelimit-reset': '2026-03-02T10:01Z' }), now)).toBe(
      60_000,
    );
    expect(retryAfterMs(new Headers(), now)).toBeUndefined();
    // A wait longer than the policy allows gives up rather than hanging.
    expect(retryWait(new Headers({ 'retry-after': '3600' }), 0, { maxMs: 60_000 })).toBe(undefined);
    // Without a header: doubling, with jitter, for as many retries as the policy has.
    const waits = [0, 1, 2].map((n) => retryWait(undefined, n, { baseMs: 100 }) as number);
    expect(waits[0]).toBeGreaterThanOrEqual(50);
    expect(waits[2]).toBeGreaterThanOrEqual(200);
    expect(retryWait(undefined, 3, { retries: 3 })).toBeUndefined();
  });

  describe('against a throttling server', () => {
    let server: Server;
    let url: string;
    const answers: Array<{ status: number; headers?: Record<string, string> }> = [];
    let seen = 0;
    beforeAll(async () => {
      server = createServer((_req, res) => {
        seen++;
        const next = answers.shift() ?? { status: 200 };
        res.writeHead(next.status, next.headers).end(next.status === 200 ? 'done' : 'busy');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('sends a POST again after 429s, as long as asked, and stops at a 500', async () => {
      answers.push({ status: 429, headers: { 'Retry-After': '0' } }, { status: 429 });
      seen = 0;
      const started = Date.now();
      const ok = await sendWithRetry(() => fetch(url, { method: 'POST', body: 'x' }), {
        method: 'POST',
        policy: { baseMs: 50 },
      });
      expect(await ok.text()).toBe('done');
      expect(seen).toBe(3);
      expect(Date.now() - started).toBeGreaterThanOrEqual(25);

      answers.push({ status: 500 });
      seen = 0;
      const failed = await sendWithRetry(() => fetch(url), { method: 'GET' });
      expect(failed.status).toBe(500);
      expect(seen).toBe(1);

      answers.push({ status: 503 }, { status: 503 }, { status: 503 });
      seen = 0;
      const gaveUp = await sendWithRetry(() => fetch(url), {
        method: 'GET',
        policy: { retries: 2, baseMs: 1 },
      });
      expect(gaveUp.status).toBe(503);
      expect(seen).toBe(3);
    });
  });

  describe('when the host cannot be reached', () => {
    let closedPort: number;
    beforeAll(async () => {
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      closedPort = (probe.address() as AddressInfo).port;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    });

    it('tries a refused connection a few times, not for a minute, and names the cause', async () => {
      let sent = 0;
      const started = Date.now();
      const failure = await sendWithRetry(
        () => {
          sent++;
          return fetch(`http://127.0.0.1:${closedPort}/wiki/rest/api/space`);
        },
        { method: 'GET', policy: { baseMs: 10 } },
      ).catch((error: unknown) => error);
      expect(sent).toBe(4);
      expect(Date.now() - started).toBeLessThan(2000);
      // fetch says only "fetch failed"; the cause (ECONNREFUSED) makes the hint.
      const error = requestError(failure, {
        connector: 'confluence',
        what: 'confluence://SPACE',
        unreachable: 'cannot reach Confluence: check CONFLUENCE_URL',
      });
      expect(error.hint).toBe('cannot reach Confluence: check CONFLUENCE_URL');
      expect(error.message).toMatch(/ECONNREFUSED/);
    });

    it('does not retry a host name that does not exist', async () => {
      let sent = 0;
      await expect(
        sendWithRetry(
          () => {
            sent++;
            return fetch('http://no-such-host.invalid/wiki');
          },
          { method: 'GET', policy: { baseMs: 10 } },
        ),
      ).rejects.toThrow();
      expect(sent).toBe(1);
    });
  });
});
