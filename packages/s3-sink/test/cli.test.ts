import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { hasStackTrace, runCli, startFaultProxy } from '@sluice/core/testing';
import { runMoto, type S3Server, startMoto } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dbOut = fileURLToPath(
  new URL('../../../examples/data/db-out/ner-news.jsonl', import.meta.url),
);

const env = (endpoint: string) => ({
  AWS_ACCESS_KEY_ID: 'sluice-test',
  AWS_SECRET_ACCESS_KEY: 'sluice-test-secret',
  AWS_REGION: 'us-east-1',
  AWS_ENDPOINT_URL_S3: endpoint,
  AWS_EC2_METADATA_DISABLED: 'true',
});

describe.skipIf(!runMoto)('s3-sink CLI against moto_server', () => {
  let server: S3Server;
  let s3: S3Client;
  let input: Buffer;
  const get = async (key: string) => {
    const answer = await s3.send(new GetObjectCommand({ Bucket: 'labels', Key: key }));
    return Buffer.from(
      await (answer.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
  };
  beforeAll(async () => {
    server = await startMoto();
    s3 = new S3Client(server.clientConfig);
    await s3.send(new CreateBucketCommand({ Bucket: 'labels' }));
    input = await readFile(dbOut);
  }, 60_000);
  afterAll(async () => {
    s3?.destroy();
    await server?.stop();
  });

  it('exports db-out with every record byte for byte, object metadata and a manifest', async () => {
    const run = await runCli(cli, ['s3://labels/exports/{dataset}/', '--dataset', 'news'], {
      input,
      env: env(server.endpoint),
    });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(
      /s3-sink: wrote 1 part \(24 records\) and manifest.json to s3:\/\/labels\/exports\/news/,
    );
    const manifest = JSON.parse((await get('exports/news/manifest.json')).toString());
    const key = `exports/news/${manifest.parts[0].key}`;
    expect(manifest.parts[0].name).toBe('part-00000.jsonl');
    const part = await get(key);
    expect(
      part
        .toString()
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    ).toEqual(
      input
        .toString()
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    );
    expect(manifest.parts[0].sha256).toBe(createHash('sha256').update(part).digest('hex'));
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'labels', Key: key }));
    expect(head.Metadata).toMatchObject({ dataset: 'news', sha256: manifest.parts[0].sha256 });
  });

  it('writes a byte-identical export through injected faults', async () => {
    const clean = await runCli(cli, ['s3://labels/clean/{answer}/', '--format', 'jsonl.gz'], {
      input,
      env: env(server.endpoint),
    });
    expect(clean.code).toBe(0);
    // At most two failures in a row, within the SDK's default of three attempts.
    const proxy = await startFaultProxy(server.endpoint, [
      { status: 503, every: 3 },
      { status: 500, every: 7 },
    ]);
    try {
      const faulty = await runCli(cli, ['s3://labels/faulty/{answer}/', '--format', 'jsonl.gz'], {
        input,
        env: env(proxy.url),
      });
      expect(faulty.code).toBe(0);
      expect(proxy.injected).toBeGreaterThan(3);
    } finally {
      await proxy.close();
    }
    const cleanManifest = JSON.parse((await get('clean/manifest.json')).toString());
    const faultyManifest = JSON.parse((await get('faulty/manifest.json')).toString());
    const same = (parts: Array<{ key: string }>) => parts.map(({ key: _, ...part }) => part);
    expect(same(faultyManifest.parts)).toEqual(same(cleanManifest.parts));
    for (const [i, part] of cleanManifest.parts.entries()) {
      const faultyKey = faultyManifest.parts[i].key;
      expect(await get(`faulty/${faultyKey}`)).toEqual(await get(`clean/${part.key}`));
    }
  });

  it('changes nothing when the same export runs again', async () => {
    const args = ['s3://labels/again/', '--json-summary'];
    expect((await runCli(cli, args, { input, env: env(server.endpoint) })).code).toBe(0);
    const again = await runCli(cli, args, { input, env: env(server.endpoint) });
    expect(JSON.parse(again.stderr)).toMatchObject({ status: 'unchanged', written: [] });
  });

  it('fails on a missing bucket before staging the input, in one line', async () => {
    const run = await runCli(cli, ['s3://no-such-bucket/x/'], { input, env: env(server.endpoint) });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /s3-sink: error: s3:\/\/no-such-bucket\/x\/manifest.json: no such bucket/,
    );
    expect(hasStackTrace(run.stderr)).toBe(false);
  });

  it('stops at SIGTERM while publishing: exit 143, the previous export whole, the next run removes what was on its way', async () => {
    const keys = async () =>
      (
        (await s3.send(new ListObjectsV2Command({ Bucket: 'labels', Prefix: 'term/' }))).Contents ??
        []
      )
        .map((object) => object.Key)
        .sort();
    const first = await runCli(cli, ['s3://labels/term/'], {
      input: input.subarray(0, input.indexOf('\n') + 1),
      env: env(server.endpoint),
    });
    expect(first.code).toBe(0);
    const before = await keys();
    const manifest = (await get('term/manifest.json')).toString();
    let child: ChildProcess | undefined;
    // The first part upload is held back; SIGTERM arrives while it is in flight, and the
    // proxy delivers it after the run ended, as a request already sent may land.
    const proxy = await startFaultProxy(server.endpoint, [
      {
        match: ({ method, url }) => {
          const part = method === 'PUT' && /\/term\/part-00000\.[0-9a-z]{8}\.jsonl/.test(url);
          if (part) setTimeout(() => child?.kill('SIGTERM'), 300);
          return part;
        },
        delayMs: 1000,
        times: 1,
      },
    ]);
    try {
      child = spawn(process.execPath, [cli, 's3://labels/term/'], {
        env: { ...process.env, ...env(proxy.url) },
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (chunk) => {
        stderr += chunk;
      });
      child.stdin?.end(input);
      const code = await new Promise((resolve) => child?.on('close', resolve));
      expect(code).toBe(143);
      expect(stderr).toBe(
        's3-sink: error: interrupted before the export was committed: nothing was published, and what this run wrote is removed (an upload cut short, by the next run)\n',
      );
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(proxy.injected).toBe(1);
    } finally {
      await proxy.close();
    }
    expect((await get('term/manifest.json')).toString()).toBe(manifest);
    const late = (await keys()).filter((key) => !before.includes(key));
    expect(late).toEqual([
      expect.stringMatching(/^term\/\.sluice-run\.[0-9a-z]{8}\.json$/),
      expect.stringMatching(/^term\/part-00000\.[0-9a-z]{8}\.jsonl$/),
    ]);
    // The next run (the first export again: unchanged) removes both.
    const again = await runCli(cli, ['s3://labels/term/', '--json-summary'], {
      input: input.subarray(0, input.indexOf('\n') + 1),
      env: env(server.endpoint),
    });
    expect(JSON.parse(again.stderr)).toMatchObject({
      status: 'unchanged',
      swept: [late[1]?.slice(5)],
    });
    expect(await keys()).toEqual(before);
  });
});
