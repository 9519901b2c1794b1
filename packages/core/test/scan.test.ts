import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { scanJsonl } from '../src/jsonl.js';
import { scanTaskLine } from '../src/scan.js';
import { validateTask } from '../src/task.js';

/** A line nested `depth` levels deep: an object holding arrays. */
const nested = (depth: number) => `{"a":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
const python = (process.env.PATH ?? '')
  .split(delimiter)
  .map((dir) => join(dir, 'python3'))
  .find((path) => existsSync(path));

// The scanner must agree with JSON.parse + validateTask (tokens unchecked, as sinks store them
// as they came) on every line: same verdict, and for
// valid lines the same values in every field a sink reads.

const READ = [
  'text',
  'label',
  '_input_hash',
  '_task_hash',
  'answer',
  'flagged',
  'meta',
  'spans',
  'options',
  'accept',
  'score',
  '_annotator_id',
  '_session_id',
] as const;

function reference(line: string): { task?: Record<string, unknown>; problem?: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { problem: 'invalid JSON' };
  }
  const problem = validateTask(value, { tokens: false });
  return problem === undefined ? { task: value as Record<string, unknown> } : { problem };
}

function scan(line: string) {
  const bytes = Buffer.from(line);
  return scanTaskLine(bytes, 0, bytes.length);
}

function agree(line: string): void {
  const expected = reference(line);
  const got = scan(line);
  if (expected.problem === 'invalid JSON') {
    expect(got.problem, line).toMatch(/^invalid JSON \(.+, at column \d+\)$/);
  } else if (expected.problem !== undefined) {
    expect(got.problem, line).toBeDefined();
    expect(got.problem, line).not.toMatch(/^invalid JSON/);
  } else {
    expect(got.problem, line).toBeUndefined();
    // One comparison per line keeps the thousands of lines fast; a mismatch shows the fields.
    const read = (task?: Record<string, unknown>) => [
      ...READ.map((field) => task?.[field]),
      ...['image', 'audio', 'video', 'html'].map((field) => typeof task?.[field]),
    ];
    const [want, have] = [read(expected.task), read(got.task)];
    if (JSON.stringify(want) !== JSON.stringify(have)) expect(have, line).toEqual(want);
  }
}

function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  'Acme',
  'São',
  'Zürich',
  '東京',
  '😀',
  'a"b',
  'back\\slash',
  'tab\there',
  '',
  'x'.repeat(200),
];

function task(random: () => number): Record<string, unknown> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const text = Array.from({ length: 1 + Math.floor(random() * 8) }, () => pick(WORDS)).join(' ');
  let offset = 0;
  const tokens = text.split(' ').map((word, id) => {
    const token = { text: word, start: offset, end: offset + word.length, id, ws: true };
    offset += word.length + 1;
    return token;
  });
  const value: Record<string, unknown> = {
    text,
    _input_hash: Math.floor(random() * 2 ** 31) * (random() < 0.5 ? -1 : 1),
    _task_hash: -17,
    tokens,
    spans:
      random() < 0.7
        ? [
            {
              start: 0,
              end: Math.min(4, text.length),
              label: pick(['ORG', 'PER']),
              token_start: 0,
              token_end: 0,
            },
          ]
        : [],
    answer: pick(['accept', 'reject', 'ignore']),
    meta: { source: `s3://b/${pick(WORDS)}`, score: random() },
    _annotator_id: `news-${pick(['alex', 'sam'])}`,
  };
  if (random() < 0.3) value.flagged = random() < 0.5;
  if (random() < 0.3)
    value.options = [
      { id: 'A', text: 'a' },
      { id: 2, text: 'b' },
    ];
  if (random() < 0.3) value.accept = ['A'];
  if (random() < 0.3) value.image = `data:image/png;base64,${'A'.repeat(300)}`;
  if (random() < 0.3)
    value.extra = { nested: [1, 2.5, -3e-7, true, null, { deep: 'x'.repeat(150) }] };
  if (random() < 0.2) value.label = pick(['ORG', 'PER']);
  if (random() < 0.2) value.score = random();
  return value;
}

/** A random edit of a valid line: most break the JSON, some break only the task. */
function mutate(line: string, random: () => number): string {
  const at = Math.floor(random() * line.length);
  const edits = [
    () => line.slice(0, at) + line.slice(at + 1),
    () => line.slice(0, at) + pickChar(random) + line.slice(at),
    () => line.slice(0, at) + pickChar(random) + line.slice(at + 1),
    () => line.slice(0, at),
    () => line.replace('"end":', '"end":"'),
    () => line.replace(/"start":\d+/, '"start":1.5'),
    () => line.replace(/"start":\d+/, '"start":1.0'),
    () => line.replace(/"start":\d+/, '"start":1e2'),
    () => line.replace('"text":"', '"text":["'),
    () => line.replace(/"tokens":\[\{/, '"tokens":[7,{'),
    () => line.replace('"tokens"', '"\\u0074okens"'),
    () => line.replace('"answer":"', '"answer":"x'),
    () => line.replace('{"text"', '{"text":1,"text"'),
  ];
  return (edits[Math.floor(random() * edits.length)] as () => string)();
}

function pickChar(random: () => number): string {
  const chars = [
    '"',
    '\\',
    ',',
    ':',
    '{',
    '}',
    '[',
    ']',
    '0',
    '-',
    'e',
    '.',
    ' ',
    '\u0001',
    'é',
    't',
    'n',
  ];
  return chars[Math.floor(random() * chars.length)] as string;
}

describe('scanTaskLine', () => {
  it('agrees with JSON.parse + validateTask on 3,000 generated lines and their mutations', () => {
    const random = prng(7);
    let invalid = 0;
    for (let n = 0; n < 3000; n++) {
      const line = JSON.stringify(task(random));
      agree(line);
      const broken = mutate(line, random);
      if (reference(broken).problem) invalid++;
      agree(broken);
    }
    expect(invalid).toBeGreaterThan(1000); // the mutations do reach the error paths
  });

  it.each([
    ['{}'],
    [' {"text": "a" } '],
    ['{"text":"a","tokens":[]}'],
    ['{"tokens":[{"text":"a","start":0,"end":1},{"text":"b","start":2,"end":1}]}'],
    ['{"tokens":[{"text":"a","start":"0","end":1}]}'],
    ['{"tokens":[{"text":"a","start":0,"end":1,"start":5}]}'],
    ['{"tokens":[{"te\\u0078t":"a","start":0,"end":1}]}'],
    ['{"tokens":{"text":"a"}}'],
    ['{"tokens":[{"text":"a","start":-0,"end":1e400}]}'],
    ['{"tokens":[{"text":"a","start":12345678901234567890,"end":12345678901234567891}]}'],
    ['[1,2]'],
    ['"text"'],
    ['null'],
    ['{"a":01}'],
    ['{"a":1.}'],
    ['{"a":.5}'],
    ['{"a":-}'],
    ['{"a":1e}'],
    ['{"a":tru}'],
    ['{"a":"\\x"}'],
    ['{"a":"\\u12G4"}'],
    ['{"a":[1,]}'],
    ['{"a":1,}'],
    ['{"a" 1}'],
    ['{a:1}'],
    ['{"a":1}}'],
    ['{"a":1} x'],
    ['{"a":"\t"}'],
    [`{"meta":{"source":"x"},"big":"${'y'.repeat(500)}","answer":"accept"}`],
    [`{"html":"${'<b>'.repeat(100)}","text":"t"}`],
    [`{"html":${JSON.stringify([1, 'x'.repeat(200)])}}`],
    [`{"spans":[{"start":0,"end":9}],"text":"${'é'.repeat(5)}"}`],
  ])('agrees on %s', (line) => agree(line));

  it('refuses nesting deeper than Python can read back (900 levels)', () => {
    expect(scan(nested(900)).problem).toBeUndefined();
    expect(scan(nested(901)).problem).toMatch(/^invalid JSON \(nested deeper than 900 levels/);
    // 995 to 1000 levels were accepted once, and Python's json fails on them.
    expect(scan(nested(995)).problem).toMatch(/nested deeper than 900 levels/);
  });

  it.skipIf(!python)('accepts only lines that Python reads back from inside a loader', () => {
    // A reader 90 frames deep, as a Prodigy loader runs; json.loads of the deepest line accepted.
    const script = [
      'import json, sys',
      'def down(n, line):',
      '    return json.loads(line) if n == 0 else down(n - 1, line)',
      'down(90, sys.stdin.read())',
    ].join('\n');
    const run = spawnSync(python as string, ['-c', script], { input: nested(900) });
    expect(run.stderr.toString()).toBe('');
    expect(run.status).toBe(0);
  });

  it('names the column of a syntax error', () => {
    expect(scan('{"text": "Zürich", oops}').problem).toBe(
      'invalid JSON (expected a key in double quotes, at column 20)',
    );
    expect(scan('{"text": "cut off').problem).toBe(
      'invalid JSON (a string is not closed, at column 18)',
    );
  });

  it('stores tokens as they came but checks their syntax', () => {
    expect(
      scan('{"text":"ab","tokens":[{"text":"a","start":3,"end":1},"b"]}').problem,
    ).toBeUndefined();
    expect(scan(`{"tokens":[{"text":"${'a'.repeat(200)}","start":0,"end":1},]}`).problem).toBe(
      'invalid JSON (expected a value, at column 242)',
    );
    const { task } = scan(
      '{"text":"ab","tokens":[{"text":"a","start":0,"end":1}],"answer":"accept"}',
    );
    expect(task).toMatchObject({ text: 'ab', answer: 'accept' });
  });

  // Real exports: every line scanned agrees with the full parse.
  const here = dirname(fileURLToPath(import.meta.url));
  const dirs = [
    join(here, '../../../examples/data/db-out'),
    join(here, '../../../../shared/prodigy-golden'),
  ];
  const files = dirs.flatMap((dir) =>
    existsSync(dir)
      ? readdirSync(dir)
          .filter((name) => name.endsWith('.jsonl'))
          .map((name) => join(dir, name))
      : [],
  );
  it.each(files.map((file) => [file.split('/').slice(-2).join('/'), file]))(
    'agrees on every line of %s',
    (_, file) => {
      for (const line of readFileSync(file, 'utf8').split('\n')) if (line.trim()) agree(line);
    },
  );
});

describe('scanJsonl', () => {
  async function* chunks(...parts: (string | Buffer)[]) {
    for (const part of parts) yield typeof part === 'string' ? Buffer.from(part) : part;
  }
  async function all(input: AsyncIterable<Buffer>, options = {}) {
    const out = [];
    for await (const record of scanJsonl(input, options)) {
      out.push({ line: record.line, text: record.bytes.toString(), problem: record.problem });
    }
    return out;
  }

  it('yields each line with its own bytes across chunk borders, BOM, CRLF and blank lines', async () => {
    const records = await all(
      chunks(
        '\uFEFF{"text":"a"}\r\n\n  \n{"te',
        'xt":"Zür',
        Buffer.from([0xc3]),
        Buffer.from([0xbc, 0x22, 0x7d]),
        '\n{"a":1}',
      ),
    );
    expect(records).toEqual([
      { line: 1, text: '{"text":"a"}', problem: undefined },
      { line: 4, text: '{"text":"Zürü"}', problem: undefined },
      { line: 5, text: '{"a":1}', problem: undefined },
    ]);
  });

  it('refuses bytes that are not UTF-8 instead of replacing them', async () => {
    const records = await all(
      chunks(
        '{"text":"a"}\n',
        Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d, 0x0a]),
        '{"b":2}\n',
      ),
    );
    expect(records.map((record) => record.problem)).toEqual([
      undefined,
      'the line is not valid UTF-8 text',
      undefined,
    ]);
  });

  it('throws on a line over the limit, or yields it with a problem', async () => {
    await expect(
      all(chunks('{"a":1}\n{"text":"long"}\n'), { maxLineBytes: 10 }),
    ).rejects.toMatchObject({ code: 'LINE_TOO_LONG' });
    const records = await all(chunks('{"a":1}\n{"text":"long"}\n{"b":2}'), {
      maxLineBytes: 10,
      invalid: 'yield',
    });
    expect(records.map((record) => record.problem)).toEqual([
      undefined,
      'line is longer than 10 bytes',
      undefined,
    ]);
  });
});
