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
  /** An open file descriptor the CLI gets as its stdin instead (`cli < file`); `input` is then ignored. */
  stdinFd?: number;
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
    stdio: [options.stdinFd ?? 'pipe', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdin?.on('error', () => {}); // the CLI may exit before reading all of it
  child.stdin?.end(options.input);
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

/** A CLI left running (watch mode, media proxy), for tests that act while it runs. */
export interface RunningCli {
  child: ReturnType<typeof spawn>;
  stdout(): string;
  stderr(): string;
  /** Resolves once the predicate holds for the output so far; rejects after `timeout` ms. */
  waitFor(
    predicate: (out: { stdout: string; stderr: string }) => boolean,
    timeout?: number,
  ): Promise<void>;
  /** Resolves with the exit code (or signal name) once the process ends. */
  closed: Promise<number | NodeJS.Signals | null>;
}

/** Starts a built CLI with node and returns at once; the caller stops it (e.g. with SIGINT). */
export function startCli(
  script: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv } = {},
): RunningCli {
  const child = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  const closed = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.on('close', (code, signal) => resolve(code ?? signal)),
  );
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    closed,
    waitFor: (predicate, timeout = 15_000) =>
      new Promise<void>((resolve, reject) => {
        const started = Date.now();
        const poll = setInterval(() => {
          if (predicate({ stdout, stderr })) {
            clearInterval(poll);
            resolve();
          } else if (Date.now() - started > timeout || child.exitCode !== null) {
            clearInterval(poll);
            reject(
              new Error(
                `condition not met; stdout: ${stdout.slice(-500)} stderr: ${stderr.slice(-500)}`,
              ),
            );
          }
        }, 20);
      }),
  };
}

/** A source CLI's stdout (JSONL) as the tasks it holds, in order. */
// biome-ignore lint/suspicious/noExplicitAny: tests read whatever fields the tasks have
export function jsonLines(stdout: string): any[] {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

/**
 * A source CLI's stdout as sorted `source#line-or-row=text` strings: what a user checks to
 * see that every record came out once, from the right place.
 */
export function taskLines(stdout: string): string[] {
  return jsonLines(stdout)
    .map((task) => {
      const at = task.sluice?.source ?? {};
      return `${task.meta.source}#${at.line ?? at.row ?? ''}=${task.text}`;
    })
    .sort();
}
