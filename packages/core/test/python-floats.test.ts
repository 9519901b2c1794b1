import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { convert } from '../src/convert.js';
import { inputHash, taskHash } from '../src/hash.js';
import { PyFloat, PyInt, parsePythonJson, pythonJsonDumps } from '../src/python-json.js';
import type { Task } from '../src/task.js';

// Python writes the tasks (json.dumps, as a Python pre-annotation script would) and hashes them
// with the Python port of Prodigy's hashing that the recipes' Prodigy stand-in uses (over
// json.dumps(..., sort_keys=True, separators=(",", ":")), see DESIGN.md section 4).
const STANDIN = fileURLToPath(new URL('../../../recipes/tests/standin', import.meta.url));
const PYTHON = `
import json, random, sys
sys.path.insert(0, sys.argv[2])
from prodigy.util import set_hashes

rng = random.Random(int(sys.argv[1]))
FLOATS = [0.0, -0.0, 1.0, 10.0, 43.0, 1e16, 1e22, 2.5e-7, 1e-5, 123456789012345.6,
          1.7976931348623157e308, 5e-324, 0.1, 3.14]
INTS = [0, 7, -42, 2**53 + 1, 2**63 + 7, -(2**64)]
def number():
    return rng.choice(FLOATS) * rng.choice([1, -1]) if rng.random() < 0.7 else rng.choice(INTS)

for i in range(200):
    task = {"meta": {"id": i, "weight": number(), "scale": [number(), number()]}}
    kind = rng.choice(["text", "image", "audio"])
    if kind == "text":
        task["text"] = f"Stück {i}: {rng.random()}"
        if rng.random() < 0.5:
            task["spans"] = [{"start": 0, "end": 5, "label": "X", "score": number(), "w": number()}]
    elif kind == "image":
        task["image"] = f"http://127.0.0.1:8099/m/{i}.png"
        task["spans"] = [{"points": [[number(), number()], [number(), number()]], "label": "BOX"}]
    else:
        task["audio"] = f"http://127.0.0.1:8099/m/{i}.wav"
        task["audio_spans"] = [{"start": number(), "end": number(), "label": "SPEECH"}]
    print(json.dumps(set_hashes(task)))
`;

function python(args: string[], input?: string): string {
  const run = spawnSync('python3', args, { input, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`python3 failed: ${run.stderr}`);
  return run.stdout;
}

describe('numbers as Python reads them', () => {
  it('hashes generated Python tasks with floats in hashed fields as Python does', async () => {
    const lines = python(['-c', PYTHON, '20261212', STANDIN]).trim().split('\n');
    expect(lines.length).toBe(200);
    expect(lines.join('\n')).toMatch(/\d\.0[,\]}]/); // integral floats are in there
    const converted = convert('jsonl', Readable.from([`${lines.join('\n')}\n`]), {
      name: 'python.jsonl',
    });
    let compared = 0;
    for await (const { task } of converted) {
      expect([inputHash(task), taskHash(task)]).toEqual([task._input_hash, task._task_hash]);
      compared++;
    }
    expect(compared).toBe(200);
  });

  it('writes the numbers back as they were read, so Python reads the same values', () => {
    const lines = python(['-c', PYTHON, '7', STANDIN]).trim().split('\n');
    const written = lines.map((line) => JSON.stringify(parsePythonJson(line))).join('\n');
    // Python's == says 1 == 1.0: compare its own canonical dumps of both sides instead.
    const canon =
      'import json,sys\nfor l in sys.stdin: print(json.dumps(json.loads(l), sort_keys=True))';
    expect(python(['-c', canon], written)).toBe(python(['-c', canon], lines.join('\n')));
  });

  it('keeps integral floats, -0.0, overflow and long integers; plain numbers stay numbers', () => {
    const value = parsePythonJson(
      '{"a":43.0,"b":1e16,"c":-0.0,"d":-0,"e":1E400,"f":12345678901234567890,"g":1.5,"h":7}',
    ) as Record<string, unknown>;
    expect(value.a).toEqual(new PyFloat(43, '43.0'));
    expect(value.b).toEqual(new PyFloat(1e16, '1e16'));
    expect(value.c).toBeInstanceOf(PyFloat);
    expect(Object.is(value.d, 0)).toBe(true);
    expect(value.f).toEqual(new PyInt('12345678901234567890'));
    expect([value.g, value.h]).toEqual([1.5, 7]);
    expect(pythonJsonDumps(value)).toBe(
      '{"a":43.0,"b":1e+16,"c":-0.0,"d":0,"e":Infinity,"f":12345678901234567890,"g":1.5,"h":7}',
    );
    expect(JSON.stringify(value)).toBe(
      '{"a":43.0,"b":1e16,"c":-0.0,"d":0,"e":1E400,"f":12345678901234567890,"g":1.5,"h":7}',
    );
  });

  it('reads numbers inside strings as text, whatever they look like', () => {
    const text = 'v1.0 \\"costs\\" 1e3 -0 or 12345678901234567890';
    const task = parsePythonJson(JSON.stringify({ text, score: 0.5, n: [-0.5, 10.0] })) as Task;
    expect(task).toEqual({ text, score: 0.5, n: [-0.5, 10] });
    expect(JSON.stringify(parsePythonJson('{"t":"a\\"1.0","n":[-3,1.0]}'))).toBe(
      '{"t":"a\\"1.0","n":[-3,1.0]}',
    );
  });
});
