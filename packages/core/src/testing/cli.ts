import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** Bytes or text written to stdin, then closed; stdin is /dev/null-like when omitted. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the process after this many ms (default 20 s). */
  timeout?: number;
}

/** Runs a built CLI (a `dist/cli.js`) with node, as a user would, and collects its output. */
export async function runCli(
  script: string,
  args: string[],
  options: RunCliOptions = {},
): Promise<CliRun> {
  if (!existsSync(script)) {
    throw new Error(`${script} does not exist: build first (npx pnpm -r build, or npm test)`);
  }
  const child = spawn(process.execPath, [script, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdin.on('error', () => {}); // the CLI may exit before reading all of it
  child.stdin.end(options.input);
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout ?? 20_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('close', (c, s) => resolve([c, s])),
  );
  clearTimeout(timer);
  return {
    code,
    signal,
    stdout: Buffer.concat(stdout).toString('utf8'),
    stderr: Buffer.concat(stderr).toString('utf8'),
  };
}

/** True when stderr shows a stack trace, which an expected failure must never print. */
export function hasStackTrace(stderr: string): boolean {
  return /^\s+at .+\(.+:\d+:\d+\)$/m.test(stderr) || /node:internal/.test(stderr);
}
