import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { SluiceError } from '../src/errors.js';
import {
  DEFAULT_MAX_LINE_BYTES,
  type JsonlRecord,
  parseJsonl,
  readLines,
  writeJsonl,
} from '../src/jsonl.js';

/** Feeds the given chunks the way a file or pipe would, one per read. */
async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array | string> {
  for (const part of parts) yield part;
}

/** Feeds bytes one at a time: the worst split a pipe can produce. */
async function* byteByByte(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function caught(promise: Promise<unknown>): Promise<SluiceError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(SluiceError);
    return error as SluiceError;
  }
  throw new Error('expected a SluiceError, but nothing was thrown');
}

/** A Writable that keeps everything written to it as one string. */
function sink(options: { highWaterMark?: number } = {}) {
  const parts: Buffer[] = [];
  const stream = new Writable({
    highWaterMark: options.highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      parts.push(chunk);
      callback();
    },
  });
  return { stream, text: () => Buffer.concat(parts).toString('utf8'), writes: () => parts.length };
}

const task = (i: number) => ({
  text: `Ticket ${i}: the invoice total is wrong — ünïcödé 請求書 🧾`,
  meta: { source: `s3://acme/tickets/${i}.jsonl`, line: i },
  _input_hash: 1000 + i,
});

describe('readLines', () => {
  it('numbers every line, blank ones included, and drops CR from CRLF endings', async () => {
    const input = chunks('{"a":1}\r\n', '\r\n', '   \n{"b"', ':2}\r\n{"c":3}\n');
    const lines = await collect(readLines(input));
    expect(lines).toEqual([
      { line: 1, text: '{"a":1}' },
      { line: 2, text: '' },
      { line: 3, text: '   ' },
      { line: 4, text: '{"b":2}' },
      { line: 5, text: '{"c":3}' },
    ]);
  });

  it('yields a last line that has no newline, and nothing for an empty input', async () => {
    expect(await collect(readLines(chunks('one\ntwo')))).toEqual([
      { line: 1, text: 'one' },
      { line: 2, text: 'two' },
    ]);
    expect(await collect(readLines(chunks()))).toEqual([]);
    expect(await collect(readLines(chunks('', new Uint8Array(0))))).toEqual([]);
  });

  it('strips a UTF-8 byte order mark at the start, even when it arrives byte by byte', async () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}\n{"b":2}')]);
    const whole = await collect(readLines(chunks(bytes)));
    const split = await collect(readLines(byteByByte(bytes)));
    expect(whole).toEqual([
      { line: 1, text: '{"a":1}' },
      { line: 2, text: '{"b":2}' },
    ]);
    expect(split).toEqual(whole);
  });

  it('never tears a multi-byte character, wherever the chunks are cut', async () => {
    const text = [
      '{"text":"naïve café — 東京 🧾 ok"}',
      '',
      '{"text":"Ελληνικά \\u00e9 ✓"}',
      'x',
    ].join('\r\n');
    const bytes = Buffer.from(text, 'utf8');
    const expected = text.split('\r\n');

    const oneByOne = await collect(readLines(byteByByte(bytes)));
    expect(oneByOne.map((l) => l.text)).toEqual(expected);

    for (let cut = 0; cut <= bytes.length; cut++) {
      const lines = await collect(readLines(chunks(bytes.subarray(0, cut), bytes.subarray(cut))));
      expect(lines.map((l) => l.text)).toEqual(expected);
    }
  });

  it('reads a chunk of megabytes (split in pieces inside) as the lines it holds', async () => {
    // Lines of every length around the 64 KiB pieces a chunk is split in, with multi-byte
    // characters and CR LF endings wherever a piece may end.
    const lines: string[] = [];
    for (let i = 0; lines.join('\n').length < 3_000_000; i++) {
      const fill = 'ü東x🧾'.repeat((i * 7919) % 40_000);
      lines.push(JSON.stringify({ i, text: fill }));
    }
    const bytes = Buffer.from(`${lines.join('\r\n')}\r\n`, 'utf8');
    const whole = await collect(readLines(chunks(bytes)));
    expect(whole.map((l) => l.text)).toEqual(lines);
    expect(whole.at(-1)?.line).toBe(lines.length);
    // A limit smaller than some lines: those are refused by number, the others read.
    const max = 100_000;
    const long = lines.findIndex((l) => Buffer.byteLength(l) > max);
    const records = [];
    for await (const record of parseJsonl(chunks(bytes), { invalid: 'yield', maxLineBytes: max }))
      records.push(record);
    expect(records).toHaveLength(lines.length);
    expect(records[long]).toMatchObject({
      line: long + 1,
      error: `line is longer than ${max} bytes`,
    });
    expect(records.filter((r) => r.error === undefined)).toHaveLength(
      lines.filter((l) => Buffer.byteLength(l) <= max).length,
    );
  });

  it('refuses a line that is not UTF-8, naming it, wherever the chunks are cut', async () => {
    const bytes = Buffer.concat([
      Buffer.from('héllo\nwörld\n'),
      Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]), // "caf\xe9": Latin-1, not UTF-8
      Buffer.from('after\n'),
    ]);
    for (const input of [chunks(bytes), byteByByte(bytes)]) {
      const seen: string[] = [];
      await expect(
        (async () => {
          for await (const { text } of readLines(input, { name: 'notes.txt' })) seen.push(text);
        })(),
      ).rejects.toMatchObject({
        code: 'BAD_INPUT',
        message: 'notes.txt line 3: the line is not valid UTF-8 text',
      });
      expect(seen).toEqual(['héllo', 'wörld']);
    }
    const records: JsonlRecord[] = [];
    const jsonl = Buffer.concat([
      Buffer.from('{"a":1}\n{"b":"'),
      Buffer.from([0xff]),
      Buffer.from('"}\n{"c":3}\n'),
    ]);
    for await (const record of parseJsonl(chunks(jsonl), { invalid: 'yield' }))
      records.push(record);
    expect(records.map((record) => record.error ?? record.value)).toEqual([
      { a: 1 },
      'the line is not valid UTF-8 text',
      { c: 3 },
    ]);
  });

  it('accepts strings as well as bytes, as from a stream with an encoding set', async () => {
    const lines = await collect(readLines(chunks('{"a":"é', '"}\n', Buffer.from('{"b":1}\n'))));
    expect(lines.map((l) => l.text)).toEqual(['{"a":"é"}', '{"b":1}']);
  });

  it('joins a line spread over many small chunks', async () => {
    const long = `{"text":"${'ab🧾'.repeat(50_000)}"}`;
    const bytes = Buffer.from(`${long}\n{"next":true}\n`);
    async function* smallReads() {
      for (let i = 0; i < bytes.length; i += 1000) yield bytes.subarray(i, i + 1000);
    }
    const lines = await collect(readLines(smallReads()));
    expect(lines.map((l) => l.text)).toEqual([long, '{"next":true}']);
  });

  it('stops with LINE_TOO_LONG naming the line, without buffering the whole line', async () => {
    let reads = 0;
    async function* endlessLine() {
      yield '{"ok":1}\n';
      for (;;) {
        reads++;
        yield 'x'.repeat(1024);
      }
    }
    const error = await caught(
      collect(readLines(endlessLine(), { name: 'stdin', maxLineBytes: 64 * 1024 })),
    );
    expect(error.code).toBe('LINE_TOO_LONG');
    expect(error.message).toBe('stdin line 2: line is longer than 65536 bytes');
    expect(error.hint).toBe('raise --max-line-bytes, or check that the input is JSONL');
    // It gave up as soon as the limit was passed, not when the input ended (it never does).
    expect(reads).toBeLessThanOrEqual(65);
  });

  it('does not count the CR of a CRLF ending against the limit', async () => {
    const lines = await collect(readLines(chunks('1234\r\n12345\r', '\n'), { maxLineBytes: 5 }));
    expect(lines.map((l) => l.text)).toEqual(['1234', '12345']);
  });

  it('closes the input when the reader stops early', async () => {
    let closed = false;
    async function* input() {
      try {
        for (let i = 0; ; i++) yield `{"i":${i}}\n`;
      } finally {
        closed = true;
      }
    }
    for await (const line of readLines(input())) {
      if (line.line === 3) break;
    }
    expect(closed).toBe(true);
  });
});

describe('parseJsonl', () => {
  it('parses tasks and keeps line numbers right across blank lines and CRLF', async () => {
    const input = chunks('{"text":"a"}\r\n\r\n  \t \n', '{"text":"b"}\r\n\n{"text":"c"}');
    const records = await collect(parseJsonl(input));
    expect(records).toEqual([
      { line: 1, raw: '{"text":"a"}', value: { text: 'a' } },
      { line: 4, raw: '{"text":"b"}', value: { text: 'b' } },
      { line: 6, raw: '{"text":"c"}', value: { text: 'c' } },
    ]);
  });

  it('reports invalid JSON with the line number and a hint', async () => {
    const seen: unknown[] = [];
    async function consume() {
      for await (const record of parseJsonl(chunks('{"a":1}\n\n{"a":}\n{"a":3}\n'), {
        name: 'stdin',
      })) {
        seen.push(record.value);
      }
    }
    const error = await caught(consume());
    expect(error.code).toBe('BAD_INPUT');
    expect(error.message).toMatch(/^stdin line 3: invalid JSON \(.+\)$/);
    expect(error.hint).toBe(
      'each line must be one JSON object; use --skip-invalid to set bad lines aside',
    );
    // The good line before it was delivered first.
    expect(seen).toEqual([{ a: 1 }]);
  });

  it('names the input "input" when no name is given', async () => {
    const error = await caught(collect(parseJsonl(chunks('nope\n'))));
    expect(error.message).toMatch(/^input line 1: invalid JSON/);
  });

  it("hands bad lines over with invalid: 'yield' and goes on", async () => {
    const records = await collect(
      parseJsonl(chunks('{"a":1}\n{"a":\n{"a":3}\n'), { invalid: 'yield' }),
    );
    expect(records).toHaveLength(3);
    expect(records[0]).toEqual({ line: 1, raw: '{"a":1}', value: { a: 1 } });
    expect(records[1]?.line).toBe(2);
    expect(records[1]?.raw).toBe('{"a":');
    expect(records[1]?.error).toMatch(/^invalid JSON \(/);
    expect(records[1]?.value).toBeUndefined();
    expect(records[2]).toEqual({ line: 3, raw: '{"a":3}', value: { a: 3 } });
  });

  it('throws LINE_TOO_LONG for an oversized line by default', async () => {
    const input = chunks('{"a":1}\n', `{"text":"${'x'.repeat(200)}"}\n`, '{"a":3}\n');
    const error = await caught(
      collect(parseJsonl(input, { maxLineBytes: 100, name: 'big.jsonl' })),
    );
    expect(error.code).toBe('LINE_TOO_LONG');
    expect(error.message).toBe('big.jsonl line 2: line is longer than 100 bytes');
  });

  it("sets an oversized line aside with invalid: 'yield' and parses the lines after it", async () => {
    // One oversized line within a chunk, one spread over many chunks.
    const huge = `{"text":"${'y'.repeat(5000)}"}`;
    async function* input() {
      yield `{"a":1}\n{"text":"${'x'.repeat(200)}"}\n{"a":3}\n`;
      for (let i = 0; i < huge.length; i += 64) yield huge.slice(i, i + 64);
      yield '\n\n{"a":6}';
    }
    const records: JsonlRecord[] = await collect(
      parseJsonl(input(), { maxLineBytes: 100, invalid: 'yield' }),
    );
    expect(records).toEqual([
      { line: 1, raw: '{"a":1}', value: { a: 1 } },
      { line: 2, raw: '', error: 'line is longer than 100 bytes' },
      { line: 3, raw: '{"a":3}', value: { a: 3 } },
      { line: 4, raw: '', error: 'line is longer than 100 bytes' },
      { line: 6, raw: '{"a":6}', value: { a: 6 } },
    ]);
  });

  it('round-trips realistic tasks fed one byte at a time', async () => {
    const tasks = Array.from({ length: 20 }, (_, i) => task(i));
    const bytes = Buffer.from(tasks.map((t) => `${JSON.stringify(t)}\n`).join(''));
    const records = await collect(parseJsonl(byteByByte(bytes)));
    expect(records.map((r) => r.value)).toEqual(tasks);
    expect(records.map((r) => r.line)).toEqual(tasks.map((_, i) => i + 1));
  });

  it('uses a 64 MiB line limit by default', () => {
    expect(DEFAULT_MAX_LINE_BYTES).toBe(64 * 1024 * 1024);
  });
});

describe('writeJsonl', () => {
  it('writes one JSON line per value, counts lines and UTF-8 bytes, and leaves the output open', async () => {
    const out = sink();
    const tasks = [task(1), task(2), { text: 'plain' }];
    const result = await writeJsonl(tasks, out.stream);
    const expected = tasks.map((t) => `${JSON.stringify(t)}\n`).join('');
    expect(out.text()).toBe(expected);
    expect(result).toEqual({ lines: 3, bytes: Buffer.byteLength(expected) });
    expect(out.stream.writableEnded).toBe(false);

    const back = await collect(parseJsonl(chunks(out.text())));
    expect(back.map((r) => r.value)).toEqual(tasks);
  });

  it('keeps every byte when lines of all sizes straddle the internal 64 KiB batches', async () => {
    const out = sink();
    const values = Array.from({ length: 3000 }, (_, i) =>
      i % 500 === 7
        ? { text: '長'.repeat(40_000 + i), i }
        : { ...task(i), pad: 'é'.repeat(i % 97) },
    );
    const result = await writeJsonl(values, out.stream);
    const expected = values.map((v) => `${JSON.stringify(v)}\n`).join('');
    expect(out.text()).toBe(expected);
    expect(result).toEqual({ lines: 3000, bytes: Buffer.byteLength(expected) });
  });

  it('batches many small lines into few writes', async () => {
    const out = sink();
    async function* many() {
      for (let i = 0; i < 10_000; i++) yield { i };
    }
    const result = await writeJsonl(many(), out.stream);
    expect(result.lines).toBe(10_000);
    expect(out.writes()).toBeLessThan(10);
  });

  it('stops pulling from the source while a slow consumer has not drained', async () => {
    let produced = 0;
    async function* source() {
      for (let i = 0; i < 2000; i++) {
        produced++;
        yield task(i);
      }
    }
    const lineOf = (i: number) => `${JSON.stringify(task(i))}\n`;
    const total = (n: number, size: (line: string) => number) =>
      Array.from({ length: n }, (_, i) => size(lineOf(i))).reduce((a, b) => a + b, 0);
    const held: (() => void)[] = [];
    let hold = true;
    const output = new Writable({
      highWaterMark: 1,
      write(_chunk, _encoding, callback) {
        if (hold) held.push(callback);
        else setTimeout(callback, 1);
      },
    });

    const writing = writeJsonl(source(), output);
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const producedWhenBlocked = produced;
    await sleep(150);
    // Nothing more was pulled while the consumer sat on its first chunk, and
    // what was pulled is about one 64 KiB batch, not the whole source.
    expect(produced).toBe(producedWhenBlocked);
    expect(total(produced, (line) => Buffer.byteLength(line))).toBeLessThan(
      64 * 1024 + 2 * Buffer.byteLength(lineOf(1999)),
    );
    expect(produced).toBeLessThan(2000);

    hold = false;
    for (const callback of held.splice(0)) callback();
    await expect(writing).resolves.toEqual({
      lines: 2000,
      bytes: total(2000, (line) => Buffer.byteLength(line)),
    });
  });

  it('reports how many lines the output has accepted, for checkpoints', async () => {
    const held: (() => void)[] = [];
    const output = new Writable({
      write(_chunk, _encoding, callback) {
        held.push(callback);
      },
    });
    const flushed: number[] = [];
    const values = Array.from({ length: 1000 }, (_, i) => task(i));
    const writing = writeJsonl(values, output, { onFlushed: (lines) => flushed.push(lines) });
    await vi.waitFor(() => expect(held.length).toBeGreaterThan(0));
    // Handed to the stream is not accepted by it: nothing to checkpoint yet.
    expect(flushed).toEqual([]);
    const release = setInterval(() => {
      for (const callback of held.splice(0)) callback();
    }, 1);
    await expect(writing).resolves.toMatchObject({ lines: 1000 });
    await vi.waitFor(() => expect(flushed.at(-1)).toBe(1000));
    clearInterval(release);
    expect(flushed.length).toBeGreaterThan(1);
    expect([...flushed].sort((a, b) => a - b)).toEqual(flushed);
  });

  it('rejects when the output fails, and stops the producer', async () => {
    let produced = 0;
    let closed = false;
    async function* endless() {
      try {
        for (;;) {
          produced++;
          yield task(produced);
        }
      } finally {
        closed = true;
      }
    }
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    const output = new Writable({
      write(_chunk, _encoding, callback) {
        callback(epipe);
      },
    });
    await expect(writeJsonl(endless(), output)).rejects.toBe(epipe);
    await vi.waitFor(() => expect(closed).toBe(true));
    const after = produced;
    await sleep(50);
    expect(produced).toBe(after);
  });

  it('delivers the first task at once even when the next one never comes', async () => {
    const out = sink();
    async function* stalls() {
      yield { text: 'first' };
      await new Promise(() => {});
    }
    const controller = new AbortController();
    const writing = writeJsonl(stalls(), out.stream, { signal: controller.signal });
    await vi.waitFor(() => expect(out.text()).toBe('{"text":"first"}\n'), {
      timeout: 200,
      interval: 5,
    });
    controller.abort();
    await expect(writing).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('rejects at once, pulling nothing, when the signal is already aborted', async () => {
    let pulled = false;
    function* values() {
      pulled = true;
      yield 1;
    }
    const controller = new AbortController();
    controller.abort();
    await expect(
      writeJsonl(values(), sink().stream, { signal: controller.signal }),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(pulled).toBe(false);
  });

  it('rejects a value that JSON cannot represent instead of writing a broken line', async () => {
    const out = sink();
    const error = await caught(writeJsonl([{ ok: 1 }, { id: 1n }], out.stream));
    expect(error.message).toMatch(/^value 2 cannot be written as JSON/);
    const missing = await caught(writeJsonl([undefined], sink().stream));
    expect(missing.message).toMatch(/^value 1 cannot be written as JSON/);
  });
});
