#!/usr/bin/env node
// `npx pnpm@10.34.9 testkit serve s3|gcs|gdrive [--port N] [--bucket sluice] [--seed DIR] ...`
// Starts a local server, seeds a bucket (or Drive folder) from a folder and prints how to
// point the connectors at it, so they can be tried with no account. Runs until Ctrl-C.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { serviceAccount, startGcsServer } from './gcs-server.js';
import { type DriveServer, startDriveServer } from './gdrive-server.js';
import { type S3ServerName, startS3 } from './s3.js';
import {
  type GeneratedBucket,
  generatedObjects,
  parseGeneratedBucket,
  startS3Stub,
} from './s3-stub.js';

// The AWS SDK's notice about future Node versions is noise in a server's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** The stub with its generated buckets, shaped like the other servers for the code below. */
async function startStubServer(buckets: GeneratedBucket[], port: number) {
  const { endpoint, stop } = await startS3Stub(buckets, port);
  const credentials = { accessKeyId: 'sluice-stub', secretAccessKey: 'sluice-stub-secret' };
  return {
    endpoint,
    stop,
    clientConfig: { endpoint, region: 'us-east-1', forcePathStyle: true, credentials },
  };
}

const USAGE = `usage: testkit serve s3 [--server s3rver|moto|stub] [--port 9000] [--bucket sluice] [--seed DIR] [--generate SPEC]...
       testkit serve gcs [--port 4443] [--bucket sluice] [--seed DIR]
       testkit serve gdrive [--port 4444] [--folder sluice] [--seed DIR]

Starts a local server on 127.0.0.1, creates the bucket, uploads every file under --seed
(keys relative to it), prints how to point the CLIs at it, and serves until Ctrl-C.

s3: s3rver (the default) needs only Node; moto needs Python's moto_server; stub is the
in-memory benchmark server. --generate name:keys:size:ext[:prefix] adds a bucket of
generated objects (e.g. small:10000:2048:jsonl): held in memory by the stub, uploaded to
the others.
gcs: the test kit's Cloud Storage JSON API server, in memory; it writes a service account
key made for the run (for --media signed) to a temporary folder.
gdrive: the test kit's Google Drive API server, in memory; --seed fills one Drive folder
(--folder, its id printed) with a folder for each subfolder and a file for each file, and an
access token is made for the run.`;

async function* files(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

/** Creates a generated bucket on a real server: every key, 32 uploads at a time. */
async function upload(client: S3Client, spec: GeneratedBucket): Promise<void> {
  await client.send(new CreateBucketCommand({ Bucket: spec.name }));
  const { keys, body } = generatedObjects(spec);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < keys.length; i = next++) {
      await client.send(new PutObjectCommand({ Bucket: spec.name, Key: keys[i], Body: body }));
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      allowPositionals: true,
      options: {
        server: { type: 'string', default: 's3rver' },
        port: { type: 'string' },
        bucket: { type: 'string', default: 'sluice' },
        folder: { type: 'string', default: 'sluice' },
        seed: { type: 'string' },
        generate: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    });
  try {
    parsed = parse();
  } catch (error) {
    console.error(`testkit: error: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const command = positionals.join(' ');
  const defaultPorts: Record<string, number> = {
    'serve s3': 9000,
    'serve gcs': 4443,
    'serve gdrive': 4444,
  };
  if (!Object.hasOwn(defaultPorts, command)) {
    console.error(
      `testkit: error: expected "serve s3", "serve gcs" or "serve gdrive", got "${command}"\n${USAGE}`,
    );
    return 2;
  }
  const port = Number(values.port ?? defaultPorts[command]);
  if (!Number.isInteger(port) || port < 0) {
    console.error(`testkit: error: --port expects a port number, got "${values.port}"`);
    return 2;
  }
  if (command === 'serve gcs') return serveGcs(port, values.bucket as string, values.seed);
  if (command === 'serve gdrive') return serveGdrive(port, values.folder as string, values.seed);
  const server = values.server as S3ServerName | 'stub';
  if (!['s3rver', 'moto', 'stub'].includes(server)) {
    console.error(`testkit: error: --server must be s3rver, moto or stub, got "${server}"`);
    return 2;
  }
  let generated: GeneratedBucket[];
  try {
    generated = (values.generate ?? []).map(parseGeneratedBucket);
  } catch (error) {
    console.error(`testkit: error: ${(error as Error).message}`);
    return 2;
  }
  const s3 =
    server === 'stub' ? await startStubServer(generated, port) : await startS3(server, port);
  const client = new S3Client(s3.clientConfig);
  const bucket = values.bucket as string;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  let seeded = 0;
  if (values.seed) {
    for await (const path of files(values.seed)) {
      const key = relative(values.seed, path).split(sep).join('/');
      await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: await readFile(path) }),
      );
      seeded++;
    }
  }
  // The stub holds generated buckets in memory; a real server gets them uploaded.
  if (server !== 'stub') for (const spec of generated) await upload(client, spec);
  client.destroy();
  const { accessKeyId, secretAccessKey } = s3.clientConfig.credentials;
  const env = [
    `AWS_ENDPOINT_URL_S3=${s3.endpoint}`,
    'AWS_REGION=us-east-1',
    `AWS_ACCESS_KEY_ID=${accessKeyId}`,
    `AWS_SECRET_ACCESS_KEY=${secretAccessKey}`,
    ...(server === 's3rver'
      ? [
          'AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED',
          'AWS_RESPONSE_CHECKSUM_VALIDATION=WHEN_REQUIRED',
        ]
      : []),
  ];
  console.log(
    `S3 (${server}) serving on ${s3.endpoint}; bucket "${bucket}" holds ${seeded} seeded objects${generated.map((g) => `; "${g.name}" ${g.keys} generated`).join('')}.`,
  );
  console.log(
    "Point the Sluice S3 CLIs at it (these are the local server's fixed test credentials):",
  );
  console.log(`  export ${env.join(' ')}`);
  console.log(`  node packages/s3-source/dist/cli.js s3://${bucket}/ | head -3`);
  console.log(
    `  node packages/s3-sink/dist/cli.js 's3://${bucket}/exports/{dataset}/' --dataset demo < examples/data/db-out/ner-news.jsonl`,
  );
  await untilStopped();
  await s3.stop();
  return 0;
}

async function untilStopped(): Promise<void> {
  console.log('Press Ctrl-C to stop.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

async function serveGcs(port: number, bucket: string, seed: string | undefined): Promise<number> {
  const { server, url, stop } = await startGcsServer({}, port);
  server.createBucket(bucket);
  let seeded = 0;
  if (seed) {
    for await (const path of files(seed)) {
      server.putObject(bucket, relative(seed, path).split(sep).join('/'), await readFile(path));
      seeded++;
    }
  }
  const account = serviceAccount();
  server.addServiceAccount(account.client_email, account.public_key);
  const keyFile = join(await mkdtemp(join(tmpdir(), 'sluice-testkit-gcs-')), 'key.json');
  const { public_key: _, ...key } = account;
  await writeFile(keyFile, JSON.stringify(key, null, 2), { mode: 0o600 });
  console.log(
    `Cloud Storage (test kit) serving on ${url}; bucket "${bucket}" holds ${seeded} seeded objects.`,
  );
  console.log(
    'Point the Sluice GCS CLIs at it (the key is made for this run, for --media signed):',
  );
  console.log(`  export STORAGE_EMULATOR_HOST=${url}`);
  console.log(`  node packages/gcs-source/dist/cli.js gs://${bucket}/ | head -3`);
  console.log(
    `  node packages/gcs-source/dist/cli.js gs://${bucket}/ --media signed --key-file ${keyFile} | head -3`,
  );
  console.log(
    `  node packages/gcs-sink/dist/cli.js 'gs://${bucket}/exports/{dataset}/' --dataset demo < examples/data/db-out/ner-news.jsonl`,
  );
  await untilStopped();
  await stop();
  return 0;
}

/** Copies a local folder into a Drive folder: a folder for each subfolder, a file for each file. */
async function seedDrive(server: DriveServer, dir: string, parentId: string): Promise<number> {
  let seeded = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      seeded += await seedDrive(server, path, server.createFolder(entry.name, parentId));
    } else if (entry.isFile()) {
      server.createFile({ name: entry.name, parentId, content: await readFile(path) });
      seeded++;
    }
  }
  return seeded;
}

async function serveGdrive(
  port: number,
  folder: string,
  seed: string | undefined,
): Promise<number> {
  const { server, url, stop } = await startDriveServer({}, port);
  const folderId = server.createFolder(folder);
  const seeded = seed ? await seedDrive(server, seed, folderId) : 0;
  const token = `ya29.sluice-${randomBytes(18).toString('base64url')}`;
  server.addToken(token);
  console.log(
    `Google Drive (test kit) serving on ${url}; folder "${folder}" (id ${folderId}) holds ${seeded} seeded files.`,
  );
  console.log('Point the Sluice Google Drive CLIs at it (the access token is made for this run):');
  console.log(`  export GOOGLE_OAUTH_ACCESS_TOKEN=${token}`);
  console.log(`  export SLUICE_GDRIVE_ENDPOINT=${url}`);
  console.log(
    `  node packages/gdrive-source/dist/cli.js gdrive://folder/${folderId} --recursive | head -3`,
  );
  console.log(
    `  node packages/gdrive-sink/dist/cli.js 'gdrive://folder/${folderId}/exports/{dataset}' --dataset news < examples/data/db-out/ner-news.jsonl`,
  );
  await untilStopped();
  await stop();
  return 0;
}

process.exitCode = await main();
