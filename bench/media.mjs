// Scenario 7: what an annotator waits for each image. A source streams image tasks into the
// harness, which plays the browser of someone annotating in sequence: it takes the next task,
// asks for its image, reads it whole, and looks at it for a while before the next one. The
// store sits behind a proxy that holds every request for a while, as a cloud store does for a
// laptop; the harness records the wait of each image, from request to last byte.
import { spawn } from 'node:child_process';
import { createServer, request } from 'node:http';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/** The percentile `p` (0..100) of `xs`, nearest rank. */
export function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/**
 * Starts an HTTP proxy on 127.0.0.1 in front of `target` that holds every request `ms`
 * before forwarding it (one round trip to a distant store), headers untouched, so presigned
 * URLs made for the proxy still verify.
 */
export async function latencyProxy(target, ms) {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    setTimeout(() => {
      const out = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      out.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      req.pipe(out);
    }, ms);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

/**
 * Runs `node cli args` and annotates its first `images` image tasks in sequence, `thinkMs`
 * per image after it arrives. Resolves with the milliseconds waited per image, and the
 * run's seconds. Every image is checked to be whole: its Content-Length, at least `size` bytes.
 */
export async function annotate(cli, args, { env, images, size, thinkMs }) {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const waits = [];
  try {
    const lines = createInterface({ input: child.stdout });
    for await (const line of lines) {
      const url = JSON.parse(line).image;
      const asked = process.hrtime.bigint();
      const response = await fetch(url);
      const body = Buffer.from(await response.arrayBuffer());
      waits.push(Number(process.hrtime.bigint() - asked) / 1e6);
      const length = Number(response.headers.get('content-length'));
      if (response.status !== 200 || body.length !== length || length < size) {
        throw new Error(`${url} answered ${response.status} with ${body.length} bytes: ${stderr}`);
      }
      if (waits.length === images) break;
      await sleep(thinkMs);
    }
    if (waits.length !== images) {
      throw new Error(`expected ${images} image tasks, got ${waits.length}: ${stderr}`);
    }
  } finally {
    // The source serves media until interrupted, as it does for Prodigy.
    child.kill('SIGINT');
    await exited;
  }
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, waits };
}
