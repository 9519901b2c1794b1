#!/usr/bin/env node
// Parse + serialize throughput of the Sluice JSONL codec against the two ways
// people usually move JSONL in Node: a readline + JSON.parse loop, and ndjson.
//
//   node bench/codec.mjs            markdown table on stdout
//   node bench/codec.mjs --json     the same results as JSON on stdout
//
// Env: BENCH_ROUNDS (default 5), BENCH_MB (size of the generated file, default 100),
// SLUICE_CORE (module to import instead of packages/core/dist/index.js).
// Progress goes to stderr, so stdout holds only the results.
import { once } from 'node:events';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ndjson from 'ndjson';
import { median, nerFile } from './lib.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const corePath = process.env.SLUICE_CORE ?? join(here, '../packages/core/dist/index.js');
if (!existsSync(corePath)) {
  console.error(`${corePath} not found: run \`npx --yes pnpm@10.34.9 -r build\` first`);
  process.exit(1);
}
const { parseJsonl, writeJsonl } = await import(pathToFileURL(resolve(corePath)).href);

const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const targetBytes = Math.round(Number(process.env.BENCH_MB ?? 100) * 1e6);
const asJson = process.argv.includes('--json');

// --- contenders -----------------------------------------------------------

/** Discards what it is given, like a fast pipe reader, and counts it. */
function nullSink() {
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      sink.bytes += chunk.length;
      callback();
    },
  });
  sink.bytes = 0;
  return sink;
}

const contenders = {
  async sluice(file) {
    const out = nullSink();
    async function* values(records) {
      for await (const record of records) yield record.value;
    }
    const result = await writeJsonl(values(parseJsonl(createReadStream(file))), out);
    return { lines: result.lines, bytes: out.bytes };
  },

  async readline(file) {
    const out = nullSink();
    const lines = createInterface({
      input: createReadStream(file),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    let count = 0;
    for await (const line of lines) {
      if (line.trim() === '') continue;
      const value = JSON.parse(line);
      count++;
      if (!out.write(`${JSON.stringify(value)}\n`)) await once(out, 'drain');
    }
    return { lines: count, bytes: out.bytes };
  },

  async ndjson(file) {
    const out = nullSink();
    let count = 0;
    const parse = ndjson.parse();
    parse.on('data', () => count++);
    await pipeline(createReadStream(file), parse, ndjson.stringify(), out);
    return { lines: count, bytes: out.bytes };
  },
};

// --- run ----------------------------------------------------------------

const file = await nerFile(targetBytes);
const size = statSync(file).size;
const names = Object.keys(contenders);
const seconds = Object.fromEntries(names.map((n) => [n, []]));
let expected;

// Alternating contenders (and rotating who goes first) spreads warm-up, GC
// pressure and machine noise evenly instead of charging it to one of them.
for (let round = 0; round < rounds; round++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(round + k) % names.length];
    globalThis.gc?.();
    const started = process.hrtime.bigint();
    const result = await contenders[name](file);
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    seconds[name].push(elapsed);
    expected ??= result;
    if (result.lines !== expected.lines || result.bytes !== expected.bytes) {
      throw new Error(
        `${name} wrote ${result.lines} lines / ${result.bytes} bytes, expected ${expected.lines} / ${expected.bytes}`,
      );
    }
    console.error(
      `round ${round + 1}/${rounds} ${name}: ${(size / 1e6 / elapsed).toFixed(1)} MB/s`,
    );
  }
}

const mbps = (name) => size / 1e6 / median(seconds[name]);
const results = {
  benchmark: 'codec',
  node: process.version,
  file: { bytes: size, lines: expected.lines },
  rounds,
  contenders: Object.fromEntries(
    names.map((n) => [
      n,
      { medianMBps: mbps(n), medianSeconds: median(seconds[n]), seconds: seconds[n] },
    ]),
  ),
  ratios: {
    sluiceOverReadline: mbps('sluice') / mbps('readline'),
    sluiceOverNdjson: mbps('sluice') / mbps('ndjson'),
  },
};

if (asJson) {
  console.log(JSON.stringify(results, null, 2));
} else {
  const label = {
    sluice: 'Sluice parseJsonl -> writeJsonl',
    readline: 'readline + JSON.parse/stringify',
    ndjson: 'ndjson.parse() -> ndjson.stringify()',
  };
  console.log(
    `Parse + serialize of ${(size / 1e6).toFixed(1)} MB (${expected.lines} NER tasks), median of ${rounds} rounds, Node ${process.version}\n`,
  );
  console.log('| contender | median MB/s | median s | Sluice / this |');
  console.log('|---|---:|---:|---:|');
  for (const n of names) {
    console.log(
      `| ${label[n]} | ${mbps(n).toFixed(1)} | ${median(seconds[n]).toFixed(3)} | ${(mbps('sluice') / mbps(n)).toFixed(2)}x |`,
    );
  }
}
