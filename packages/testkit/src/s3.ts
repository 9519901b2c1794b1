import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * Two independent S3 implementations for the conformance suites, each in its own process
 * on a random loopback port:
 * - moto_server (Python, on the machine image): accepts the SDK's defaults, so it covers
 *   the default code path, CRC32 checksums and aws-chunked uploads included;
 * - s3rver (npm): needs the OpenSSL legacy provider (it builds continuation tokens with
 *   DES) and stores aws-chunked framing as object bytes, so its clients must send
 *   checksums only when required.
 * moto accepts any credentials; s3rver knows one access key, `S3RVER` (secret `S3RVER`), and
 * refuses others with InvalidAccessKeyId, which makes it the server for wrong-credential tests.
 */
export type S3ServerName = 'moto' | 's3rver';

export interface S3Server {
  name: S3ServerName;
  /** Endpoint for the SDK, e.g. `http://127.0.0.1:41234` (path-style addressing). */
  endpoint: string;
  /** Client settings this server needs, to spread into `new S3Client({...})`. */
  clientConfig: {
    endpoint: string;
    region: string;
    forcePathStyle: true;
    credentials: { accessKeyId: string; secretAccessKey: string };
    requestChecksumCalculation?: 'WHEN_REQUIRED';
    responseChecksumValidation?: 'WHEN_REQUIRED';
  };
  stop(): Promise<void>;
}

// Placeholder credentials that only satisfy the SDK's signer (moto accepts any), and the
// fixed pair s3rver is built with.
const MOTO_CREDENTIALS = { accessKeyId: 'sluice-test', secretAccessKey: 'sluice-test-secret' };
const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function assertFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', () =>
      reject(new Error(`port ${port} on 127.0.0.1 is in use: pick another with --port`)),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
}

async function waitUntilUp(
  endpoint: string,
  child: ChildProcess,
  name: string,
  output: () => string,
) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(
        `${name} exited with ${child.exitCode} before serving: ${output().slice(-800)}`,
      );
    }
    try {
      await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not answer on ${endpoint} within 30 s: ${output().slice(-800)}`);
}

async function startProcess(
  name: S3ServerName,
  command: string,
  args: (port: number) => string[],
  options: { port?: number; env?: NodeJS.ProcessEnv; cleanup?: () => Promise<void> } = {},
): Promise<S3Server> {
  const { env = {}, cleanup } = options;
  // A port another server holds would answer the readiness check for ours: refuse it.
  if (options.port) await assertFree(options.port);
  const port = options.port || (await freePort());
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(command, args(port), {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT'
          ? new Error(
              `${command} not found: ${name === 'moto' ? "install it with pip install 'moto[server]'" : 'run pnpm install'}`,
            )
          : error,
      ),
    );
  });
  // A test run that crashes must not leave servers behind.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  await spawned;
  await waitUntilUp(endpoint, child, name, () => output);
  return {
    name,
    endpoint,
    clientConfig: {
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: name === 'moto' ? MOTO_CREDENTIALS : S3RVER_CREDENTIALS,
      ...(name === 's3rver'
        ? {
            requestChecksumCalculation: 'WHEN_REQUIRED' as const,
            responseChecksumValidation: 'WHEN_REQUIRED' as const,
          }
        : {}),
    },
    async stop() {
      process.removeListener('exit', kill);
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
        child.kill('SIGKILL');
      }
      await cleanup?.();
    },
  };
}

/** Starts moto_server on loopback, on `port` or a random one. */
export function startMoto(port?: number): Promise<S3Server> {
  return startProcess('moto', 'moto_server', (p) => ['-H', '127.0.0.1', '-p', String(p)], { port });
}

/** Starts s3rver on loopback (on `port` or a random one), storing objects in a fresh temporary folder. */
export async function startS3rver(port?: number): Promise<S3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'sluice-s3rver-'));
  const bin = createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js');
  return startProcess(
    's3rver',
    process.execPath,
    (p) => [
      bin,
      '--directory',
      directory,
      '--address',
      '127.0.0.1',
      '--port',
      String(p),
      '--silent',
    ],
    {
      port,
      env: { NODE_OPTIONS: '--openssl-legacy-provider' },
      cleanup: () => rm(directory, { recursive: true, force: true }),
    },
  );
}

/** Starts the named S3 server. */
export function startS3(name: S3ServerName, port?: number): Promise<S3Server> {
  return name === 'moto' ? startMoto(port) : startS3rver(port);
}

/** Whether `moto_server` is on the PATH (it comes from Python: pip install 'moto[server]'). */
export const hasMoto: boolean = (process.env.PATH ?? '')
  .split(delimiter)
  .some((dir) => dir !== '' && existsSync(join(dir, 'moto_server')));

/**
 * moto needs Python, which a machine with only Node and npm lacks: there its suites are
 * skipped with a message. In CI (CI=true) they always run, so a missing moto fails loudly.
 */
export const runMoto: boolean = hasMoto || process.env.CI === 'true';
if (!runMoto) {
  console.warn(
    "moto_server not found: S3 tests run against s3rver only (pip install 'moto[server]' for both)",
  );
}

/** The S3 servers the suites run against here. */
export const S3_SERVERS: readonly S3ServerName[] = runMoto ? ['moto', 's3rver'] : ['s3rver'];
