import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { runCli, startCli } from '@sluice/core/testing';
import { describe, expect, it } from 'vitest';

const serve = fileURLToPath(new URL('../dist/serve.js', import.meta.url));
const repo = (path: string) => fileURLToPath(new URL(`../../../${path}`, import.meta.url));

/** Starts `testkit serve KIND` seeded with the example text folder, once it says it is ready. */
async function serveSeeded(
  kind: 's3' | 'gcs' | 'gdrive' | 'file360' | 'core-share',
  seeded = /bucket "sluice" holds 1 seeded objects/,
) {
  const server = startCli(serve, [
    'serve',
    kind,
    '--port',
    '0',
    '--seed',
    repo('examples/data/text'),
  ]);
  try {
    await server.waitFor(({ stdout }) => stdout.includes('Press Ctrl-C to stop.'), 30_000);
    expect(server.stdout()).toMatch(seeded);
  } catch (error) {
    server.child.kill('SIGINT');
    throw error;
  }
  return server;
}

describe('testkit serve s3', () => {
  it('serves a seeded bucket that the S3 CLIs use with the environment it prints', async () => {
    const server = await serveSeeded('s3');
    try {
      const exported = /export (.+)/.exec(server.stdout())?.[1] ?? '';
      const env = Object.fromEntries(
        exported.split(' ').map((pair) => pair.split('=') as [string, string]),
      );
      const source = await runCli(
        repo('packages/s3-source/dist/cli.js'),
        ['s3://sluice/', '--quiet'],
        {
          env: { ...env, AWS_EC2_METADATA_DISABLED: 'true' },
        },
      );
      expect(source.code).toBe(0);
      expect(source.stdout.trim().split('\n')).toHaveLength(12);
      const sink = await runCli(
        repo('packages/s3-sink/dist/cli.js'),
        ['s3://sluice/exports/{dataset}/', '--dataset', 'demo'],
        {
          input: await readFile(repo('examples/data/db-out/ner-news.jsonl')),
          env: { ...env, AWS_EC2_METADATA_DISABLED: 'true' },
        },
      );
      expect(sink.stderr).toMatch(/wrote 1 part \(24 records\)/);
      const back = await runCli(
        repo('packages/s3-source/dist/cli.js'),
        ['s3://sluice/exports/demo/', '--include', '*.jsonl', '--quiet'],
        {
          env: { ...env, AWS_EC2_METADATA_DISABLED: 'true' },
        },
      );
      expect(back.stdout.trim().split('\n')).toHaveLength(24);
    } finally {
      server.child.kill('SIGINT');
    }
    expect(await server.closed).toBe(0);
  }, 60_000);
});

describe('testkit serve gcs', () => {
  it('serves a seeded bucket that the GCS CLIs use with the environment it prints', async () => {
    const server = await serveSeeded('gcs');
    try {
      const host = /export STORAGE_EMULATOR_HOST=(\S+)/.exec(server.stdout())?.[1] ?? '';
      const keyFile = /--key-file (\S+)/.exec(server.stdout())?.[1] ?? '';
      const env = { STORAGE_EMULATOR_HOST: host };
      const source = await runCli(
        repo('packages/gcs-source/dist/cli.js'),
        ['gs://sluice/', '--quiet'],
        {
          env,
        },
      );
      expect(source.code).toBe(0);
      expect(source.stdout.trim().split('\n')).toHaveLength(12);
      const sink = await runCli(
        repo('packages/gcs-sink/dist/cli.js'),
        ['gs://sluice/exports/{dataset}/', '--dataset', 'demo'],
        { input: await readFile(repo('examples/data/db-out/ner-news.jsonl')), env },
      );
      expect(sink.stderr).toMatch(/wrote 1 part \(24 records\)/);
      const signed = await runCli(
        repo('packages/gcs-source/dist/cli.js'),
        ['gs://sluice/exports/demo/', '--include', '*.jsonl', '--quiet', '--key-file', keyFile],
        { env },
      );
      expect(signed.stdout.trim().split('\n')).toHaveLength(24);
    } finally {
      server.child.kill('SIGINT');
    }
    expect(await server.closed).toBe(0);
  }, 60_000);
});

describe('testkit serve gdrive', () => {
  it('serves a seeded folder that the Drive source CLI reads with the token it prints', async () => {
    const server = await serveSeeded('gdrive', /folder "sluice" \(id \S+\) holds 1 seeded files/);
    try {
      const token = /export GOOGLE_OAUTH_ACCESS_TOKEN=(\S+)/.exec(server.stdout())?.[1] ?? '';
      const endpoint = /export SLUICE_GDRIVE_ENDPOINT=(\S+)/.exec(server.stdout())?.[1] ?? '';
      const folder =
        /cli\.js (gdrive:\/\/folder\/\S+) --recursive/.exec(server.stdout())?.[1] ?? '';
      const source = await runCli(
        repo('packages/gdrive-source/dist/cli.js'),
        [folder, '--recursive', '--quiet'],
        { env: { GOOGLE_OAUTH_ACCESS_TOKEN: token, SLUICE_GDRIVE_ENDPOINT: endpoint } },
      );
      expect(source.code).toBe(0);
      expect(source.stdout.trim().split('\n')).toHaveLength(12);
    } finally {
      server.child.kill('SIGINT');
    }
    expect(await server.closed).toBe(0);
  }, 60_000);
});

describe.each([
  {
    kind: 'file360' as const,
    seeded: /folder "sluice" \(node \d+\) holds 1 seeded documents/,
    names: ['FILE360_URL', 'FILE360_USERNAME', 'FILE360_PASSWORD'],
  },
  {
    kind: 'core-share' as const,
    seeded: /folder "sluice" \(node \d{19}\) holds 1 seeded documents/,
    names: [
      'FILE360_URL',
      'FILE360_API',
      'FILE360_OTDS_URL',
      'FILE360_CLIENT_ID',
      'FILE360_CLIENT_SECRET',
    ],
  },
])('testkit serve $kind', ({ kind, seeded, names }) => {
  it('serves a seeded folder that the File 360 CLIs use with the environment it prints', async () => {
    const server = await serveSeeded(kind, seeded);
    try {
      const out = server.stdout();
      const env = Object.fromEntries(
        names.map((name) => [name, new RegExp(`${name}=(\\S+)`).exec(out)?.[1] ?? '']),
      );
      const folder = /cli\.js (file360:\/\/node\/\d+) --recursive/.exec(out)?.[1] ?? '';
      const source = await runCli(
        repo('packages/file360-source/dist/cli.js'),
        [folder, '--recursive', '--quiet'],
        { env },
      );
      expect(source.code).toBe(0);
      expect(source.stdout.trim().split('\n')).toHaveLength(12);
      const sink = await runCli(
        repo('packages/file360-sink/dist/cli.js'),
        [`${folder}/exports/{dataset}`, '--dataset', 'news'],
        { env, input: await readFile(repo('examples/data/db-out/ner-news.jsonl')) },
      );
      expect(sink.stderr).toMatch(/wrote 1 part \(24 records\)/);
    } finally {
      server.child.kill('SIGINT');
    }
    expect(await server.closed).toBe(0);
  }, 60_000);
});

describe.each([
  { kind: 'gcs', name: 'many' },
  { kind: 'gdrive', name: 'many' },
  { kind: 'confluence', name: 'MANY' },
  { kind: 'file360', name: 'many' },
] as const)('testkit serve $kind --generate', ({ kind, name }) => {
  it('holds many generated items that the source CLI reads, each once, across pages', async () => {
    const items = 2500;
    const server = startCli(serve, [
      'serve',
      kind,
      '--port',
      '0',
      '--generate',
      `${name}:${items}:64:txt`,
    ]);
    try {
      await server.waitFor(({ stdout }) => stdout.includes('Press Ctrl-C to stop.'), 30_000);
      const out = server.stdout();
      const env = Object.fromEntries(
        [...out.matchAll(/^\s*export (.*)$/gm)]
          .flatMap((m) => (m[1] as string).split(' '))
          .map((pair) => pair.split(/=(.*)/s).slice(0, 2) as [string, string]),
      );
      const url = new RegExp(`generated ${name}: ${items} items of 64 bytes at (\\S+)`).exec(
        out,
      )?.[1];
      expect(url).toBeDefined();
      const source = await runCli(
        repo(`packages/${kind}-source/dist/cli.js`),
        [url as string, '--json-summary'],
        { env, timeout: 120_000 },
      );
      expect(source.code).toBe(0);
      const texts = source.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).meta?.source);
      expect(new Set(texts).size).toBe(items);
      expect(JSON.parse(source.stderr.trim().split('\n').pop() as string).items).toBe(items);
    } finally {
      server.child.kill('SIGINT');
    }
    expect(await server.closed).toBe(0);
  }, 180_000);
});
