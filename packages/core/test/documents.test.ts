import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  labelsFromCsv,
  labelsFromText,
  selfContainedHtml,
  writeLabelFiles,
} from '../src/documents.js';

const PNG = Buffer.from('89504e470d0a1a0a', 'hex');

describe('selfContainedHtml', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url?.startsWith('/img.png')) {
        res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('keeps styles and body, drops scripts, and inlines every image once', async () => {
    const html = `<html><head><title>t</title><style>p{color:red}</style><script>alert(1)</script></head>
<body class="doc"><p>Hi</p><img alt="a" src="${base}/img.png?key=secret&amp;x=1"><img src='${base}/img.png?key=secret&amp;x=1'><script>x()</script></body></html>`;
    const out = await selfContainedHtml(html, { name: 'doc' });
    const data = `data:image/png;base64,${PNG.toString('base64')}`;
    expect(out).toBe(
      `<style>p{color:red}</style>\n<div class="doc"><p>Hi</p><img alt="a" src="${data}"><img src='${data}'></div>\n`,
    );
  });

  it('fails naming the image without its query (keys and signatures stay out of messages)', async () => {
    const html = `<body><img src="${base}/gone.png?key=secret"></body>`;
    await expect(selfContainedHtml(html, { name: 'Guide' })).rejects.toThrow(
      `Guide: cannot inline image ${base}/gone.png (HTTP 404)`,
    );
    await expect(selfContainedHtml(html, { name: 'Guide' })).rejects.not.toThrow(/secret/);
    await expect(selfContainedHtml('<img src="relative.png">', { name: 'Guide' })).rejects.toThrow(
      /not an http\(s\) link/,
    );
    await expect(
      selfContainedHtml(`<img src="${base}/img.png">`, { name: 'Guide', maxImageBytes: 4 }),
    ).rejects.toThrow(/larger than 4 bytes/);
  });
});

describe('labels', () => {
  it('takes list items from text when it has lists, with descriptions', () => {
    const text =
      'Labels for the project.\r\n\r\n* PERSON: a named human\r\n  - ORG - a company\r\n1. PRODUCT\r\nNotes at the end.\r\n';
    expect(labelsFromText(text)).toEqual([
      { label: 'PERSON', description: 'a named human' },
      { label: 'ORG', description: 'a company' },
      { label: 'PRODUCT' },
    ]);
    expect(labelsFromText('BUG\n\nBILLING\n')).toEqual([{ label: 'BUG' }, { label: 'BILLING' }]);
  });

  it('takes a column of a table, by default or by name, with descriptions and examples', () => {
    const csv = 'Tag,Definition,Examples\nBUG,Broken,"crash, freeze"\n,ignored,\nBILLING,Money,\n';
    expect(labelsFromCsv(csv, { name: 'sheet' })).toEqual([
      { label: 'BUG', description: 'Broken', examples: 'crash, freeze' },
      { label: 'BILLING', description: 'Money' },
    ]);
    expect(labelsFromCsv('a,b\n1,2\n', { name: 'sheet', column: 'b' })).toEqual([{ label: '2' }]);
    expect(() => labelsFromCsv('a,b\n1,2\n', { name: 'sheet', column: 'c' })).toThrow(
      'sheet: no column "c" (columns: a, b)',
    );
  });

  it('writes the label file and a side file, refusing commas and empty lists', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-labels-'));
    try {
      const warnings: string[] = [];
      const out = join(dir, 'labels.txt');
      const written = await writeLabelFiles(
        [{ label: 'BUG', description: 'Broken' }, { label: 'UI' }, { label: 'BUG' }],
        out,
        { name: 'doc', onWarning: (w) => warnings.push(w) },
      );
      expect(written).toEqual({ labels: 2, descriptions: join(dir, 'labels.json') });
      expect(await readFile(out, 'utf8')).toBe('BUG\nUI\n');
      expect(JSON.parse(await readFile(join(dir, 'labels.json'), 'utf8'))).toEqual([
        { label: 'BUG', description: 'Broken' },
        { label: 'UI' },
      ]);
      expect(warnings).toEqual(['doc: label "BUG" is listed twice; kept once']);
      await expect(writeLabelFiles([{ label: 'A,B' }], out, { name: 'doc' })).rejects.toThrow(
        /contains a comma/,
      );
      await expect(writeLabelFiles([], out, { name: 'doc' })).rejects.toThrow(
        'doc: no labels found',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
