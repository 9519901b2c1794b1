import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy } from '../src/testing/fault-proxy.js';

const body = Buffer.alloc(64 * 1024, 'x');

describe('fault-injection proxy', () => {
  let server: Server;
  let target: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      let uploaded = 0;
      req.on('data', (chunk: Buffer) => {
        uploaded += chunk.length;
      });
      req.on('end', () => {
        // A resumable upload session's address, on the server itself.
        const session = req.url === '/session' ? { Location: `${target}/upload?id=1` } : {};
        res.writeHead(200, {
          'Content-Length': body.length,
          'X-Uploaded': String(uploaded),
          ...session,
        });
        res.end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    target = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('forwards requests and bodies untouched when no rule applies', async () => {
    const proxy = await startFaultProxy(target);
    const response = await fetch(`${proxy.url}/a?b=c`, { method: 'PUT', body: 'hello' });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-uploaded')).toBe('5');
    expect(Buffer.from(await response.arrayBuffer())).toEqual(body);
    expect(proxy.injected).toBe(0);
    await proxy.close();
  });

  it("points the server's own Location back through the proxy, so follow-up requests meet faults", async () => {
    const proxy = await startFaultProxy(target);
    const response = await fetch(`${proxy.url}/session`, { method: 'POST' });
    expect(response.headers.get('location')).toBe(`${proxy.url}/upload?id=1`);
    await response.arrayBuffer();
    await proxy.close();
  });

  it('answers every n-th matching request with an S3-style error, a limited number of times', async () => {
    const proxy = await startFaultProxy(target, [
      { status: 503, every: 2, times: 2, match: ({ method }) => method === 'GET' },
    ]);
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await fetch(`${proxy.url}/k`)).status);
    expect(statuses).toEqual([503, 200, 503, 200, 200, 200]);
    const failed = await startFaultProxy(target, [{ status: 500 }]);
    const answer = await fetch(`${failed.url}/k`);
    expect(await answer.text()).toContain('<Code>InternalError</Code>');
    expect(proxy.injected).toBe(2);
    await proxy.close();
    await failed.close();
  });

  it('cuts a response midway through its body', async () => {
    const proxy = await startFaultProxy(target, [{ cutAfterBytes: 1000, times: 1 }]);
    const cut = await fetch(`${proxy.url}/k`);
    await expect(cut.arrayBuffer()).rejects.toThrow();
    const whole = await fetch(`${proxy.url}/k`);
    expect((await whole.arrayBuffer()).byteLength).toBe(body.length);
    await proxy.close();
  });

  it('delays responses', async () => {
    const proxy = await startFaultProxy(target, [{ delayMs: 300 }]);
    const started = Date.now();
    await (await fetch(`${proxy.url}/k`)).arrayBuffer();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await proxy.close();
  });
});
