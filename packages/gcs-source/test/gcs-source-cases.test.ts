import { collect, TINY_PNG } from '@sluice/core/testing';
import { useGcs } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { gcsSource } from '../src/gcs-source.js';

describe('gcs source', () => {
  const kit = useGcs(['raw']);

  it('pages through more than 2,500 objects lazily and emits each once', async () => {
    for (let i = 0; i < 2600; i++) {
      kit.server.putObject('raw', `many/${String(i).padStart(5, '0')}.txt`, `object ${i}\n`);
    }
    const before = kit.server.requests['objects.list'] ?? 0;
    const source = gcsSource({ url: 'gs://raw/many/', storage: kit.storage, concurrency: 16 });
    const texts = (await collect(source)).map((task) => task.text);
    expect(texts).toHaveLength(2600);
    expect(new Set(texts).size).toBe(2600);
    expect(source.stats.listed).toBe(2600);
    // A short first page (100), then pages of 1,000.
    expect((kit.server.requests['objects.list'] ?? 0) - before).toBe(4);
  }, 60_000);

  it('records the generation as the version; a same-bytes rewrite keeps the hashes', async () => {
    const stored = kit.server.putObject('raw', 'gen/doc.txt', 'first\n');
    const read = () => collect(gcsSource({ url: 'gs://raw/gen/', storage: kit.storage }));
    const [task] = await read();
    expect(task?.text).toBe('first');
    expect(task?.sluice?.source?.version).toBe(stored.generation);
    const rewritten = kit.server.putObject('raw', 'gen/doc.txt', 'first\n');
    expect(rewritten.generation).not.toBe(stored.generation);
    const [again] = await read();
    expect(again?.sluice?.source?.version).toBe(rewritten.generation);
    expect([again?._input_hash, again?._task_hash]).toEqual([task?._input_hash, task?._task_hash]);
  });

  it('writes V4 signed URLs that a plain HTTP client can fetch, and a tampered one is refused', async () => {
    kit.server.putObject('raw', 'media/pixel one.png', TINY_PNG, { contentType: 'image/png' });
    const [task] = await collect(
      gcsSource({ url: 'gs://raw/media/', storage: kit.storage, media: 'signed', urlTtl: 600 }),
    );
    const url = new URL(task?.image as string);
    expect(url.searchParams.get('X-Goog-Algorithm')).toBe('GOOG4-RSA-SHA256');
    expect(url.searchParams.get('X-Goog-Expires')).toBe('600');
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(TINY_PNG);

    const signature = url.searchParams.get('X-Goog-Signature') as string;
    const flipped = `${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`;
    const tampered = new URL(url);
    tampered.searchParams.set('X-Goog-Signature', flipped);
    const refused = await fetch(tampered);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toMatch(/SignatureDoesNotMatch/);
    const otherObject = new URL(url);
    otherObject.pathname = otherObject.pathname.replace('pixel', 'pixel2');
    expect((await fetch(otherObject)).status).toBe(403);
  });

  it('reads one object when the URL names it', async () => {
    kit.server.putObject('raw', 'one/a.txt', 'only this\n');
    kit.server.putObject('raw', 'one/a.txt.bak', 'not this\n');
    const tasks = await collect(gcsSource({ url: 'gs://raw/one/a.txt', storage: kit.storage }));
    expect(tasks.map((task) => [task.text, task.meta?.source])).toEqual([
      ['only this', 'gs://raw/one/a.txt'],
    ]);
  });

  it('fails on a URL that names neither an object nor a folder, and on a missing bucket', async () => {
    await expect(
      collect(gcsSource({ url: 'gs://raw/no/such-name.txt', storage: kit.storage })),
    ).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'gs://raw/no/such-name.txt: no such object or folder',
    });
    await expect(
      collect(gcsSource({ url: 'gs://no-such-bucket/x/', storage: kit.storage })),
    ).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'gs://no-such-bucket/x/: no such bucket',
    });
  });

  it('skips zero-byte folder markers', async () => {
    kit.server.putObject('raw', 'marked/', '');
    kit.server.putObject('raw', 'marked/x.txt', 'x\n');
    const tasks = await collect(gcsSource({ url: 'gs://raw/marked/', storage: kit.storage }));
    expect(tasks.map((task) => task.text)).toEqual(['x']);
  });
});
