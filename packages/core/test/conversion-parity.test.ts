import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { writeJsonl } from '../src/jsonl.js';
import { PyFloat, PyInt, parsePythonJson } from '../src/python-json.js';
import { createSource, type SourceDriver } from '../src/source.js';

// The conversion's fast paths (a parse that looks at the text again only when the value holds
// integers, hashes dumped as bytes, batches) against what Python itself holds: Python writes
// varied tasks in every style a pre-annotation script might (ensure_ascii on and off, spaces,
// sorted keys, literals such as 1E5, -0, 1e999 and 20-digit ids), stamps them as a source does
// and hashes them with the recipes' stand-in port of Prodigy's hashing (DESIGN.md section 4);
// then reads back what Sluice wrote.
const STANDIN = fileURLToPath(new URL('../../../recipes/tests/standin', import.meta.url));
const URI = 'mem://parity/tasks.jsonl';

const GENERATE = `
import json, random, sys
sys.path.insert(0, sys.argv[2])
from prodigy.util import set_hashes

rng = random.Random(int(sys.argv[1]))
WORDS = ["order", "résumé", "Zürich", "東京", "✓", "😀", "tab\\there", 'quote"d', "back\\\\slash",
         "line\\nbreak", "\\u2028", "\\x7f", "\\x01", "a/b", "price 1.50", "1,250.00", "-0", "1e5"]
NUMBERS = ["0", "-0", "7", "-42", "1.0", "-0.0", "43.0", "1E5", "1e+16", "2.5e-7", "0.1", "3.14",
           "1.50", "1e999", "-1e999", "9007199254740993", "12345678901234567890", "-18446744073709551616",
           "123456789012345.6"]

def text():
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))

def literal():
    return rng.choice(NUMBERS)

def encode(value, style):
    # json.dumps in the chosen style, with number literals written as given.
    if isinstance(value, Literal):
        return value.text
    if isinstance(value, dict):
        items = list(value.items())
        if style["sort"]:
            items.sort()
        colon, comma = style["seps"][1], style["seps"][0]
        return "{" + comma.join(json.dumps(k, ensure_ascii=style["ascii"]) + colon + encode(v, style) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + style["seps"][0].join(encode(v, style) for v in value) + "]"
    return json.dumps(value, ensure_ascii=style["ascii"])

class Literal:
    def __init__(self, text):
        self.text = text

def plain(value):
    # What Python holds after json.loads of the written line.
    if isinstance(value, Literal):
        return json.loads(value.text)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value

out = []
for i in range(int(sys.argv[3])):
    task = {}
    kind = rng.random()
    if kind < 0.75:
        task["text"] = text()
    elif kind < 0.85:
        task["image"] = f"http://127.0.0.1:8099/m/{i}.png"
    elif kind < 0.9:
        task["html"] = "<p>" + text() + "</p>"
    # else no input key: the whole task is hashed
    meta = {}
    for key in rng.sample(["id", "score", "weight", "source", "note", "nested", "é"], rng.randint(0, 4)):
        meta[key] = {"id": Literal(literal()), "score": Literal(literal()), "weight": [Literal(literal()), Literal(literal())],
                     "source": rng.choice([f"s3://old/{i}.jsonl", "mem://parity/tasks.jsonl"]), "note": text(),
                     "nested": {"score": Literal(literal()), "keep": Literal(literal()), "path": "x"}, "é": text()}[key]
    if meta or rng.random() < 0.5:
        task["meta"] = meta
    if "text" in task and rng.random() < 0.4:
        n = len(task["text"])
        a = rng.randint(0, n)
        task["spans"] = [{"start": a, "end": rng.randint(a, n), "label": rng.choice(["ORG", "PER"]), "score": Literal(literal()),
                          "w": Literal(literal())}]
    if rng.random() < 0.2:
        task["label"] = rng.choice(["BUG", "BILLING", "Ünïcode"])
    if rng.random() < 0.1:
        task["options"] = [{"id": Literal(literal()) if rng.random() < 0.5 else "a", "text": text()}]
    if rng.random() < 0.3:
        task["extra"] = {"rank": Literal(literal()), "values": [Literal(literal()), text(), None, True]}
    if rng.random() < 0.1:
        task["_input_hash"] = rng.randint(-2**31, 2**31 - 1)
    style = {"ascii": rng.random() < 0.5, "sort": rng.random() < 0.3,
             "seps": rng.choice([(",", ":"), (", ", ": ")])}
    line = encode(task, style)
    # As a source stamps it: meta.source (a different one kept as meta.origin) and lineage.
    held = plain(task)
    meta = dict(held.get("meta", {}))
    if isinstance(meta.get("source"), str) and meta["source"] != "${URI}" and "origin" not in meta:
        meta["origin"] = meta["source"]
    meta["source"] = "${URI}"
    held["meta"] = meta
    held["sluice"] = {"source": {"version": "v1", "line": i + 1}}
    set_hashes(held)
    out.append([line, json.dumps(held, sort_keys=True)])
print(json.dumps(out))
`;

// Reads what Sluice wrote back as Python does, one canonical dump per line.
const READ_BACK = `
import json, sys
for line in sys.stdin:
    print(json.dumps(json.loads(line), sort_keys=True))
`;

function python(args: string[], input?: string): string {
  const run = spawnSync('python3', args, { input, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`python3 failed: ${run.stderr}`);
  return run.stdout;
}

/** One JSONL item in memory, as a driver lists and reads it. */
function oneItem(body: string): SourceDriver {
  const item = { key: 'tasks.jsonl', uri: URI, version: 'v1', size: Buffer.byteLength(body) };
  return {
    connector: 'mem',
    root: 'mem://parity',
    async *list() {
      yield item;
    },
    async open() {
      // Chunks that split lines and characters anywhere, as a network read does.
      const bytes = Buffer.from(body);
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += 777) chunks.push(bytes.subarray(at, at + 777));
      return chunks;
    },
    async stat() {
      return item;
    },
  };
}

/** What Python's json.loads holds, as JSON.parse with every number's literal in hand reads it. */
function readAsPython(text: string): unknown {
  return JSON.parse(text, (_key, value, context?: { source?: string }) => {
    const literal = context?.source;
    if (typeof value !== 'number' || literal === undefined) return value;
    if (/[.eE]/.test(literal)) {
      return Number.isInteger(value) || !Number.isFinite(value)
        ? new PyFloat(value, literal)
        : value;
    }
    if (Object.is(value, -0)) return 0;
    return Number.isSafeInteger(value) ? value : new PyInt(literal);
  });
}

describe('conversion against Python', () => {
  it('reads every number as Python does, on lines with and without integers', () => {
    const generated = JSON.parse(python(['-c', GENERATE, '11', STANDIN, '3000'])) as [
      string,
      string,
    ][];
    for (const [line] of generated) expect(parsePythonJson(line)).toEqual(readAsPython(line));
    for (const line of [
      '{"x":1e999}',
      '{"a":[{"b":-1E400}]}',
      '{"n":-0}',
      '{"id":18446744073709551616}',
    ]) {
      expect(parsePythonJson(line)).toEqual(readAsPython(line));
    }
  });

  it('writes the values Python wrote, stamped, with the hashes Python computes', async () => {
    const generated = JSON.parse(python(['-c', GENERATE, '20261203', STANDIN, '3000'])) as [
      string,
      string,
    ][];
    const body = `${generated.map(([line]) => line).join('\n')}\n`;
    const expected = generated.map(([, held]) => held);
    expect(body).toMatch(/1e999/);
    expect(body).toMatch(/12345678901234567890/);
    const chunks: Buffer[] = [];
    const output = new Writable({
      write(chunk, _encoding, done) {
        chunks.push(chunk);
        done();
      },
    });
    const result = await writeJsonl(createSource(oneItem(body)), output);
    expect(result.lines).toBe(generated.length);
    const readBack = python(['-c', READ_BACK], Buffer.concat(chunks).toString('utf8'))
      .trim()
      .split('\n');
    for (let i = 0; i < expected.length; i++) {
      expect(readBack[i], `line ${i + 1}: ${generated[i]?.[0]}`).toBe(expected[i]);
    }
  });
});
