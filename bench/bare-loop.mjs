#!/usr/bin/env node
// The conversion scenario's yardstick: the least a program does to turn a JSONL file into
// tasks with lineage. `readline`, `JSON.parse`, `meta.source` stamped, `JSON.stringify`,
// written to stdout with backpressure. No checks, no hashes.
//
//   node bench/bare-loop.mjs file.jsonl > out.jsonl
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const file = process.argv[2];
const source = pathToFileURL(resolve(file)).href;
const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
let tasks = 0;
for await (const line of lines) {
  if (line.trim() === '') continue;
  const task = JSON.parse(line);
  task.meta = Object.assign({}, task.meta, { source });
  tasks++;
  if (!process.stdout.write(`${JSON.stringify(task)}\n`)) await once(process.stdout, 'drain');
}
console.error(JSON.stringify({ tasks }));
