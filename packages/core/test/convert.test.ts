import { describe, expect, it } from 'vitest';
import { convert, detectFormat } from '../src/convert.js';

async function* bytes(text: string) {
  yield Buffer.from(text);
}

async function tasksOf(format: Parameters<typeof convert>[0], text: string, name = 'x') {
  const out = [];
  for await (const entry of convert(format, bytes(text), { name })) out.push(entry);
  return out;
}

describe('converters', () => {
  it('detects the format from --format, then extension, then content type', () => {
    expect(detectFormat('a/b.JSONL')).toBe('jsonl');
    expect(detectFormat('a/b.jsonl.gz')).toBe('jsonl');
    expect(detectFormat('a.tsv')).toBe('csv');
    expect(detectFormat('photo.JPG')).toBe('image');
    expect(detectFormat('clip.mp3')).toBe('audio');
    expect(detectFormat('clip.mp4')).toBe('video');
    expect(detectFormat('noext', 'text/csv; charset=utf-8')).toBe('csv');
    expect(detectFormat('a.bin')).toBeUndefined();
    expect(detectFormat('a.bin', undefined, 'txt')).toBe('txt');
  });

  it('reads a JSON object as one task and an array as many', async () => {
    expect(await tasksOf('json', '{"text":"one"}')).toEqual([{ task: { text: 'one' } }]);
    expect(await tasksOf('json', '\ufeff[{"text":"a"},{"text":"b"}]')).toHaveLength(2);
    await expect(tasksOf('json', '[1]', 'f.json')).rejects.toThrow(
      /f\.json \[0\]: a task must be a JSON object/,
    );
    await expect(tasksOf('json', '{', 'f.json')).rejects.toThrow(/f\.json: invalid JSON/);
  });

  it('follows Prodigy CSV conventions and reports bad CSV with its line', async () => {
    expect(await tasksOf('csv', 'text,label\n"multi\nline",A\n')).toEqual([
      { task: { text: 'multi\nline', label: 'A' }, row: 1 },
    ]);
    await expect(tasksOf('csv', 'body,label\nx,A\n', 'f.csv')).rejects.toThrow(/no "text" column/);
    await expect(tasksOf('csv', 'text,label\n"a,b\n', 'f.csv')).rejects.toThrow(
      /f\.csv.*invalid CSV/,
    );
    const tsv = [];
    for await (const entry of convert('csv', bytes('text\tlabel\na\tB\n'), { name: 'f.tsv' }))
      tsv.push(entry);
    expect(tsv[0]?.task).toEqual({ text: 'a', label: 'B' });
  });

  it('rejects documents over the size bound', async () => {
    const big = [];
    const run = async () => {
      for await (const entry of convert('html', bytes('<p>x</p>'), {
        name: 'p.html',
        maxDocumentBytes: 3,
      }))
        big.push(entry);
    };
    await expect(run()).rejects.toThrow(/p\.html: document is larger than 3 bytes/);
  });
});
