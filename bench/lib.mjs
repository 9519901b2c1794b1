// Shared by the benchmarks: timing processes side by side, medians, and the machine's description.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const GNU_TIME = '/usr/bin/time';
export const hasGnuTime = existsSync(GNU_TIME);

/**
 * Runs a command to completion with stdout discarded (or counted, see `firstByte`), and
 * returns its wall seconds, its peak RSS in MB (GNU time's %M, when /usr/bin/time exists),
 * its stderr, and with `firstByte` the seconds until the first byte on stdout.
 */
export function measure(
  command,
  args,
  { env, cwd, firstByte = false, stopAfterFirstByte = false } = {},
) {
  const rssFile = join(
    tmpdir(),
    `sluice-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`,
  );
  // A run stopped at its first byte is not wrapped: stopping GNU time would leave the command running.
  const wrapped = hasGnuTime && !stopAfterFirstByte;
  const [cmd, argv] = wrapped
    ? [GNU_TIME, ['-f', '%M', '-o', rssFile, command, ...args]]
    : [command, args];
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, argv, {
      env: { ...process.env, ...env },
      cwd,
      stdio: ['ignore', firstByte ? 'pipe' : 'ignore', 'pipe'],
    });
    let stderr = '';
    let first;
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdout?.on('data', () => {
      if (first === undefined) {
        first = Number(process.hrtime.bigint() - started) / 1e9;
        if (stopAfterFirstByte) child.kill('SIGTERM');
      }
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      let rssMB;
      if (wrapped && existsSync(rssFile)) {
        const kb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
        rssMB = Number.isFinite(kb) ? kb / 1024 : undefined;
        rmSync(rssFile, { force: true });
      }
      const stopped = stopAfterFirstByte && first !== undefined;
      if (code !== 0 && !stopped) {
        reject(
          new Error(
            `${command} ${args.join(' ')} exited with ${code ?? signal}: ${stderr.slice(-600)}`,
          ),
        );
        return;
      }
      resolve({ seconds, rssMB, stderr, firstByte: first });
    });
  });
}

/**
 * Runs every contender `rounds` times, alternating: each round runs them all, and the one
 * that goes first rotates, so warm-up and noise are spread instead of charged to one.
 * `contenders` maps a name to an async function returning a measure() result (plus any
 * fields); `before(name)` runs untimed before each run (e.g. emptying a target folder).
 */
export async function alternate(label, contenders, rounds, { before, log = console.error } = {}) {
  const names = Object.keys(contenders);
  const runs = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length];
      await before?.(name);
      const result = await contenders[name]();
      runs[name].push(result);
      log(
        `${label} round ${round + 1}/${rounds} ${name}: ${result.seconds.toFixed(2)} s${result.rssMB ? `, ${result.rssMB.toFixed(0)} MB RSS` : ''}`,
      );
    }
  }
  return Object.fromEntries(
    names.map((n) => [
      n,
      {
        seconds: median(runs[n].map((r) => r.seconds)),
        rssMB: runs[n][0].rssMB === undefined ? undefined : median(runs[n].map((r) => r.rssMB)),
        runs: runs[n].map((r) => r.seconds),
      },
    ]),
  );
}

/** Version line of a tool, or undefined when it is missing. */
export function version(command, args = ['--version']) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0 || result.error) return undefined;
  return `${result.stdout}${result.stderr}`.trim().split('\n')[0];
}

/** What the results ran on, for the README. */
export function machine() {
  const model = cpus()[0]?.model?.trim() ?? 'unknown CPU';
  return {
    date: new Date().toISOString().slice(0, 10),
    cpu: `${cpus().length} × ${model}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
    os: `${process.platform} ${spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim()}`,
    node: process.version,
    rclone: version('rclone', ['version']),
    aws: version('aws'),
  };
}

// --- sample data: Prodigy db-out records -----------------------------------

// A fixed seed keeps the file, and so the numbers, the same from run to run.
function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the invoice total for order was charged twice and the customer asked for a refund ' +
  'shipping to Zürich took eleven days while support in Montréal never answered ' +
  'contract between Acme GmbH and Globex Corporation signed on March third renewal ' +
  'payment of 1,250.00 EUR due within thirty days late fee applies after notice ' +
  'Ticket escalated to São Paulo office 東京 branch confirmed receipt ✓ résumé naïve'
).split(' ');
const LABELS = ['ORG', 'PERSON', 'DATE', 'MONEY', 'GPE', 'PRODUCT'];
const ANSWERS = ['accept', 'accept', 'accept', 'reject', 'ignore'];

/** One Prodigy ner.manual task as `prodigy db-out` writes it. */
function nerTask(random, i) {
  const count = 15 + Math.floor(random() * 60);
  const tokens = [];
  let text = '';
  for (let id = 0; id < count; id++) {
    const word = WORDS[Math.floor(random() * WORDS.length)];
    const ws = id < count - 1;
    tokens.push({ text: word, start: text.length, end: text.length + word.length, id, ws });
    text += ws ? `${word} ` : word;
  }
  const spans = [];
  for (let t = Math.floor(random() * 4); t < count; t += 5 + Math.floor(random() * 12)) {
    const last = Math.min(count - 1, t + Math.floor(random() * 3));
    spans.push({
      start: tokens[t].start,
      end: tokens[last].end,
      token_start: t,
      token_end: last,
      label: LABELS[Math.floor(random() * LABELS.length)],
    });
  }
  const hash = () => Math.floor(random() * 2 ** 32) - 2 ** 31;
  return {
    text,
    _input_hash: hash(),
    _task_hash: hash(),
    tokens,
    _view_id: 'ner_manual',
    spans,
    meta: { source: `s3://acme-raw/tickets/2026/part-${i % 97}.jsonl`, line: i + 1 },
    answer: ANSWERS[Math.floor(random() * ANSWERS.length)],
    _timestamp: 1767225600 + i,
    _annotator_id: `tickets-${['alex', 'sam', 'kim'][i % 3]}`,
    _session_id: `tickets-${['alex', 'sam', 'kim'][i % 3]}`,
  };
}

/** A JSONL file of about `targetBytes` of Prodigy ner_manual answers, generated once and reused. */
export async function nerFile(targetBytes) {
  const file = join(tmpdir(), `sluice-bench-ner-${targetBytes}.jsonl`);
  if (existsSync(file) && statSync(file).size >= targetBytes) return file;
  console.error(`generating ${file} ...`);
  const partial = `${file}.${process.pid}.tmp`;
  const out = createWriteStream(partial);
  const random = prng(42);
  let written = 0;
  for (let i = 0; written < targetBytes; i++) {
    const line = `${JSON.stringify(nerTask(random, i))}\n`;
    written += Buffer.byteLength(line);
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  await rename(partial, file);
  return file;
}

/** One small text task, as a team might feed `textcat.manual`: a ticket with a little meta. */
function textTask(random, i) {
  const count = 12 + Math.floor(random() * 14);
  const words = [];
  for (let w = 0; w < count; w++) words.push(WORDS[Math.floor(random() * WORDS.length)]);
  const task = {
    text: words.join(' '),
    meta: { id: `T-${100000 + i}`, channel: ['mail', 'chat', 'phone'][i % 3] },
  };
  // Some carry a model's score, an integral float among them (Python writes 1.0, not 1).
  if (i % 7 === 0) task.meta.score = i % 14 === 0 ? JSON.rawJSON('1.0') : random();
  if (i % 5 === 0) task.label = LABELS[i % LABELS.length];
  return task;
}

/** A JSONL file of `count` small text tasks (about 180 bytes each), generated once and reused. */
export async function textTasksFile(count) {
  const file = join(tmpdir(), `sluice-bench-tasks-${count}.jsonl`);
  if (existsSync(file)) return file;
  console.error(`generating ${file} ...`);
  const partial = `${file}.${process.pid}.tmp`;
  const out = createWriteStream(partial);
  const random = prng(7);
  for (let i = 0; i < count; i++) {
    if (!out.write(`${JSON.stringify(textTask(random, i))}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  await rename(partial, file);
  return file;
}

/** A local folder of `count` JSONL files of about `size` bytes, made once and reused. */
export async function fsFolder(count, size) {
  const dir = join(tmpdir(), `sluice-bench-folder-${count}-${size}`);
  if (existsSync(join(dir, '.complete'))) return dir;
  console.error(`generating ${dir} ...`);
  await mkdir(dir, { recursive: true });
  let body = '';
  for (let i = 0; body.length < size; i++) {
    body += `${JSON.stringify({ text: `Customer ${i} reports the invoice was charged twice.` })}\n`;
  }
  const width = String(count - 1).length;
  for (let i = 0; i < count; i += 256) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 256); j++) {
      batch.push(writeFile(join(dir, `${String(j).padStart(width, '0')}.jsonl`), body));
    }
    await Promise.all(batch);
  }
  await writeFile(join(dir, '.complete'), '');
  return dir;
}
