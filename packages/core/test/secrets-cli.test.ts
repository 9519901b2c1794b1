import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/testing/index.js';

// Every CLI, with credentials planted in every URL-shaped input it takes (the URL argument,
// endpoint flags and the environment variables naming services), under every debug log of
// Sluice: nothing of them may reach stdout or stderr. Port 9 on loopback refuses connections.
const cli = (name: string) => fileURLToPath(new URL(`../../${name}/dist/cli.js`, import.meta.url));
const TOKEN = 'PLANTEDs3cret';
const userinfo = `u:${TOKEN}@`;
const query = `X-Amz-Signature=${TOKEN}1&access_token=${TOKEN}2&key=${TOKEN}3&sig=${TOKEN}4`;
const db = '{"text":"a","answer":"accept"}\n';

interface Case {
  name: string;
  bin: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** Parts known only once the refusing server listens. */
  late?: () => Partial<Case>;
}

const cases: Case[] = [
  // The URL argument.
  { name: 's3 URL', bin: 's3-source', args: [`s3://AKIAEXAMPLE:${TOKEN}@bucket/`] },
  { name: 's3 sink URL', bin: 's3-sink', args: [`s3://AKIAEXAMPLE:${TOKEN}@bucket/`], input: db },
  { name: 'gcs URL', bin: 'gcs-source', args: [`gs://${userinfo}bucket/`] },
  { name: 'gcs sink URL', bin: 'gcs-sink', args: [`gs://${userinfo}bucket/`], input: db },
  { name: 'drive URL', bin: 'gdrive-source', args: [`gdrive://${userinfo}folder/abc`] },
  { name: 'confluence URL', bin: 'confluence-source', args: [`confluence://${userinfo}SPACE`] },
  { name: 'file360 URL', bin: 'file360-source', args: [`file360://${userinfo}node/1`] },
  // Endpoint flags and variables: credentials in the userinfo.
  ...['s3-source', 's3-sink'].flatMap((bin): Case[] => [
    {
      name: `${bin} --endpoint`,
      bin,
      args: ['s3://bucket/', '--endpoint', `http://AKIAEXAMPLE:${TOKEN}@127.0.0.1:9`],
    },
    {
      name: `${bin} AWS_ENDPOINT_URL_S3`,
      bin,
      args: ['s3://bucket/'],
      env: { AWS_ENDPOINT_URL_S3: `http://${userinfo}127.0.0.1:9` },
    },
    {
      name: `${bin} AWS_ENDPOINT_URL`,
      bin,
      args: ['s3://bucket/'],
      env: { AWS_ENDPOINT_URL: `http://${userinfo}127.0.0.1:9` },
    },
  ]),
  ...['gcs-source', 'gcs-sink'].flatMap((bin): Case[] => [
    {
      name: `${bin} --endpoint`,
      bin,
      args: ['gs://bucket/', '--endpoint', `http://${userinfo}127.0.0.1:9`],
    },
    {
      name: `${bin} STORAGE_EMULATOR_HOST`,
      bin,
      args: ['gs://bucket/'],
      env: { STORAGE_EMULATOR_HOST: `http://${userinfo}127.0.0.1:9` },
    },
    {
      name: `${bin} bare STORAGE_EMULATOR_HOST`,
      bin,
      args: ['gs://bucket/'],
      env: { STORAGE_EMULATOR_HOST: `${userinfo}127.0.0.1:9` },
    },
  ]),
  ...['gdrive-source', 'gdrive-sink'].flatMap((bin): Case[] => [
    {
      name: `${bin} --endpoint`,
      bin,
      args: ['gdrive://folder/abc', '--endpoint', `http://${userinfo}127.0.0.1:9`],
      env: { GOOGLE_OAUTH_ACCESS_TOKEN: 'x' },
    },
    {
      name: `${bin} SLUICE_GDRIVE_ENDPOINT`,
      bin,
      args: ['gdrive://folder/abc'],
      env: {
        SLUICE_GDRIVE_ENDPOINT: `http://${userinfo}127.0.0.1:9`,
        GOOGLE_OAUTH_ACCESS_TOKEN: 'x',
      },
    },
  ]),
  ...[
    ['confluence-source', ['confluence://SPACE']],
    ['confluence-sink', ['report', 'confluence://page/1']],
  ].flatMap(([bin, args]): Case[] => [
    {
      name: `${bin} CONFLUENCE_URL`,
      bin: bin as string,
      args: args as string[],
      env: { CONFLUENCE_URL: `http://${userinfo}127.0.0.1:9/wiki`, CONFLUENCE_TOKEN: 'x' },
    },
    {
      name: `${bin} --site`,
      bin: bin as string,
      args: [...(args as string[]), '--site', `http://${userinfo}127.0.0.1:9/wiki`],
      env: { CONFLUENCE_TOKEN: 'x' },
    },
  ]),
  ...['file360-source', 'file360-sink'].flatMap((bin): Case[] => [
    {
      name: `${bin} FILE360_URL`,
      bin,
      args: ['file360://node/1'],
      env: { FILE360_URL: `http://${userinfo}127.0.0.1:9/otcs/cs.exe`, FILE360_TOKEN: 'x' },
    },
    {
      name: `${bin} --base-url`,
      bin,
      args: ['file360://node/1', '--base-url', `http://${userinfo}127.0.0.1:9/otcs/cs.exe`],
      env: { FILE360_TOKEN: 'x' },
    },
  ]),
  {
    name: 'fs --media-base-url',
    bin: 'fs-source',
    args: ['.', '--media-base-url', `http://${userinfo}annotate.acme.com`],
  },
  // Secret query parameters in URLs that are accepted: the server refuses the credentials.
  ...queryCases(),
];

/** A server that refuses every request at once, as a store does wrong credentials. */
let refusing: Server;
let refusingUrl = '';

function queryCases(): Case[] {
  const at = (path: string) => `${refusingUrl}${path}?${query}`;
  // The URL is known once the server listens: cases read it when they run.
  return [
    {
      name: 's3 endpoint query',
      bin: 's3-source',
      args: ['s3://bucket/', '--endpoint', ''],
      env: { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b', AWS_REGION: 'us-east-1' },
      late: () => ({ args: ['s3://bucket/', '--endpoint', at('/')] }),
    },
    {
      name: 'gcs endpoint query',
      bin: 'gcs-source',
      args: [],
      late: () => ({ args: ['gs://bucket/', '--endpoint', at('/')] }),
    },
    {
      name: 'drive endpoint query',
      bin: 'gdrive-source',
      args: [],
      env: { GOOGLE_OAUTH_ACCESS_TOKEN: 'x' },
      late: () => ({ args: ['gdrive://folder/abc', '--endpoint', at('/')] }),
    },
    {
      name: 'confluence site query',
      bin: 'confluence-source',
      args: ['confluence://SPACE'],
      late: () => ({ env: { CONFLUENCE_URL: at('/wiki'), CONFLUENCE_TOKEN: 'x' } }),
    },
    {
      name: 'file360 server query',
      bin: 'file360-source',
      args: ['file360://node/1'],
      late: () => ({ env: { FILE360_URL: at('/otcs/cs.exe'), FILE360_TOKEN: 'x' } }),
    },
  ];
}

describe('no credential planted in a URL is ever printed', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'sluice-secrets-'));
    refusing = createServer((req, res) => {
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"refused"}');
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    refusingUrl = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => refusing.close(resolve));
    await rm(home, { recursive: true, force: true });
  });

  it.each(cases)('$name', async (given) => {
    const { bin, args, env, input } = { ...given, ...given.late?.() };
    const script = cli(bin);
    if (!existsSync(script)) throw new Error(`${script} is missing: build first`);
    for (const debug of ['sluice*', 'sluice,sluice:*']) {
      const run = await runCli(script, [...args, '--quiet'], {
        input: input ?? '',
        cwd: home,
        timeout: 30_000,
        env: {
          NODE_DEBUG: debug,
          XDG_CONFIG_HOME: home,
          // Nothing of the machine's own configuration.
          AWS_CONFIG_FILE: join(home, 'none'),
          AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'),
          GOOGLE_APPLICATION_CREDENTIALS: '',
          ...env,
        },
      });
      const output = run.stdout + run.stderr;
      expect(output).not.toContain(TOKEN);
      expect(run.code, output).not.toBe(0);
      // (NODE_DEBUG=sluice adds the stack of an unexpected error: redacted as well.)
      expect(run.stderr).toMatch(new RegExp(`^${bin}(?: report)?: error: `, 'm'));
    }
  });
});
