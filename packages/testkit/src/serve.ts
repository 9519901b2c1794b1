#!/usr/bin/env node
// `npx pnpm@10.34.9 testkit serve s3|gcs|gdrive|confluence|file360|core-share [--port N] [--bucket sluice] [--seed DIR] ...`
// Starts a local server, seeds a bucket (or Drive or File 360 folder, or Confluence space) from a folder and prints how to
// point the connectors at it, so they can be tried with no account. Runs until Ctrl-C.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join, relative, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  type ConfluenceServer,
  confluenceToken,
  startConfluenceServer,
} from './confluence-server.js';
import { coreShareClient, startCoreShareServer } from './core-share-server.js';
import { ENTERPRISE_WORKSPACE, startFile360Server } from './file360-server.js';
import { serviceAccount, startGcsServer } from './gcs-server.js';
import { startDriveServer } from './gdrive-server.js';
import { type GeneratedBucket, generatedObjects, parseGeneratedBucket } from './generated.js';
import { type S3ServerName, startS3 } from './s3.js';
import { startS3Stub } from './s3-stub.js';

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
       testkit serve gcs [--port 4443] [--bucket sluice] [--seed DIR] [--generate SPEC]...
       testkit serve gdrive [--port 4444] [--folder sluice] [--seed DIR] [--generate SPEC]...
       testkit serve confluence [--port 4445] [--space SLUICE] [--seed DIR] [--generate SPEC]...
       testkit serve file360 [--port 4446] [--folder sluice] [--seed DIR] [--generate SPEC]...
       testkit serve core-share [--port 4447] [--folder sluice] [--seed DIR]

Starts a local server on 127.0.0.1, creates the bucket, uploads every file under --seed
(keys relative to it), prints how to point the CLIs at it, and serves until Ctrl-C.

s3: s3rver (the default) needs only Node; moto needs Python's moto_server; stub is the
in-memory benchmark server. --generate name:keys:size:ext[:prefix] adds a bucket of
generated objects (e.g. small:10000:2048:jsonl): held in memory by the stub, uploaded to
the others. gcs, gdrive, confluence and file360 take --generate too: a bucket (objects under
data/), a folder, a space (key: the name; pages below its homepage) or a folder of that many
items sharing one body; a line "generated NAME: N items of S bytes at <url>" says where each is.
gcs: the test kit's Cloud Storage JSON API server, in memory; it writes a service account
key made for the run (for --media signed) to a temporary folder.
gdrive: the test kit's Google Drive API server, in memory; --seed fills one Drive folder
(--folder, its id printed) with a folder for each subfolder and a file for each file, and an
access token is made for the run.
confluence: the test kit's Confluence REST server (Cloud v2 and v1 under /wiki, Data Center
v1 under /confluence), in memory; --seed fills the space (--space) below its homepage: each
.html, .xml or .txt file becomes a page (its storage body the file, text wrapped in <p>), each
subfolder a page of that name, and other files attachments on a page named after their
folder. A user and API token are made for the run.
file360: the test kit's OpenText Content Server REST server, in memory, under /otcs/cs.exe;
--seed fills a folder (--folder, in the Enterprise Workspace, its id printed) with a folder
for each subfolder and a document for each file. A user and password are made for the run.
core-share: the test kit's OpenText Core Share REST server (File 360 on Core Share), in
memory, with OTDS's token endpoint on the same port; --seed fills a folder (--folder, in the
user's root, its 19-digit id printed) as for file360. An OAuth client is made for the run.`;

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
        space: { type: 'string', default: 'SLUICE' },
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
    'serve confluence': 4445,
    'serve file360': 4446,
    'serve core-share': 4447,
  };
  if (!Object.hasOwn(defaultPorts, command)) {
    console.error(
      `testkit: error: expected "serve s3", "serve gcs", "serve gdrive", "serve confluence", "serve file360" or "serve core-share", got "${command}"\n${USAGE}`,
    );
    return 2;
  }
  const port = Number(values.port ?? defaultPorts[command]);
  if (!Number.isInteger(port) || port < 0) {
    console.error(`testkit: error: --port expects a port number, got "${values.port}"`);
    return 2;
  }
  let generated: GeneratedBucket[];
  try {
    generated = (values.generate ?? []).map(parseGeneratedBucket);
  } catch (error) {
    console.error(`testkit: error: ${(error as Error).message}`);
    return 2;
  }
  if (generated.length > 0 && command === 'serve core-share') {
    console.error('testkit: error: --generate is for s3, gcs, gdrive, confluence and file360');
    return 2;
  }
  if (command === 'serve gcs') {
    return serveGcs(port, values.bucket as string, values.seed, generated);
  }
  if (command === 'serve gdrive') {
    return serveGdrive(port, values.folder as string, values.seed, generated);
  }
  if (command === 'serve confluence') {
    return serveConfluence(port, values.space as string, values.seed, generated);
  }
  if (command === 'serve file360') {
    return serveFile360(port, values.folder as string, values.seed, generated);
  }
  if (command === 'serve core-share') {
    return serveCoreShare(port, values.folder as string, values.seed);
  }
  const server = values.server as S3ServerName | 'stub';
  if (!['s3rver', 'moto', 'stub'].includes(server)) {
    console.error(`testkit: error: --server must be s3rver, moto or stub, got "${server}"`);
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
    `S3 (${server}) serving on ${s3.endpoint}; bucket "${bucket}" holds ${seeded} seeded objects.`,
  );
  for (const spec of generated) {
    printGenerated(spec, `s3://${spec.name}/${spec.prefix ?? 'data/'}`);
  }
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

/** Says where a generated bucket (folder, space) is, in a line scripts can read. */
function printGenerated(spec: GeneratedBucket, url: string): void {
  console.log(`generated ${spec.name}: ${spec.keys} items of ${spec.size} bytes at ${url}`);
}

async function serveGcs(
  port: number,
  bucket: string,
  seed: string | undefined,
  generated: GeneratedBucket[],
): Promise<number> {
  const { server, url, stop } = await startGcsServer({}, port);
  server.createBucket(bucket);
  for (const spec of generated) {
    server.generate(spec);
    printGenerated(spec, `gs://${spec.name}/${spec.prefix ?? 'data/'}`);
  }
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

/**
 * Copies a local folder into a store's folder: `folder` makes a subfolder (and gives its id),
 * `file` a file or document; returns the number of files.
 */
async function seedTree<Id>(
  dir: string,
  parent: Id,
  make: {
    folder(parent: Id, name: string): Id;
    file(parent: Id, name: string, bytes: Buffer): void;
  },
): Promise<number> {
  let seeded = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      seeded += await seedTree(path, make.folder(parent, entry.name), make);
    } else if (entry.isFile()) {
      make.file(parent, entry.name, await readFile(path));
      seeded++;
    }
  }
  return seeded;
}

async function serveGdrive(
  port: number,
  folder: string,
  seed: string | undefined,
  generated: GeneratedBucket[],
): Promise<number> {
  const { server, url, stop } = await startDriveServer({}, port);
  const folderId = server.createFolder(folder);
  for (const spec of generated) printGenerated(spec, `gdrive://folder/${server.generate(spec)}`);
  const seeded = seed
    ? await seedTree(seed, folderId, {
        folder: (parent, name) => server.createFolder(name, parent),
        file: (parentId, name, content) => {
          server.createFile({ name, parentId, content });
        },
      })
    : 0;
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

const PAGE_FILES = new Set(['.html', '.xml', '.txt']);

/**
 * A text file as storage format, escaped: paragraphs (blank-line separated) in <p>, their line
 * breaks as <br />; a file without blank lines has a paragraph per line.
 */
function textToStorage(text: string): string {
  const escaped = (t: string) =>
    t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const blank = /\r?\n[ \t]*\r?\n/;
  return text
    .split(blank.test(text.trim()) ? blank : /\r?\n/)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => `<p>${escaped(p).replace(/\r?\n/g, '<br />')}</p>`)
    .join('');
}

/** A title not yet used in the space: the name, else the name with its folder, else numbered. */
function freeTitle(server: ConfluenceServer, space: string, name: string, folder: string): string {
  const taken = new Set(server.pages(space).map((p) => p.title));
  if (!taken.has(name)) return name;
  const withFolder = folder ? `${name} (${folder})` : name;
  let title = withFolder;
  for (let n = 2; taken.has(title); n++) title = `${withFolder} ${n}`;
  return title;
}

/**
 * Copies a local folder into a Confluence space below `parentId`: pages for .html/.xml/.txt
 * files, a page for each subfolder (holding what it holds), other files attached to the page
 * named after their folder (`holder`; made on first use for the top folder).
 */
async function seedConfluence(
  server: ConfluenceServer,
  space: string,
  dir: string,
  parentId: string,
  holderId?: string,
): Promise<{ pages: number; attachments: number }> {
  const folder = basename(dir);
  const seeded = { pages: 0, attachments: 0 };
  const entries = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => a.name.localeCompare(b.name));
  let holder = holderId;
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const id = server.addPage({
        space,
        title: freeTitle(server, space, entry.name, folder),
        body: `<p>Files from the folder ${entry.name}.</p>`,
        parentId,
      });
      seeded.pages++;
      const inner = await seedConfluence(server, space, path, id, id);
      seeded.pages += inner.pages;
      seeded.attachments += inner.attachments;
    } else if (entry.isFile() && PAGE_FILES.has(extname(entry.name).toLowerCase())) {
      const text = await readFile(path, 'utf8');
      const ext = extname(entry.name).toLowerCase();
      server.addPage({
        space,
        title: freeTitle(server, space, basename(entry.name, extname(entry.name)), folder),
        body: ext === '.txt' ? textToStorage(text) : text,
        parentId,
      });
      seeded.pages++;
    } else if (entry.isFile()) {
      if (holder === undefined) {
        holder = server.addPage({
          space,
          title: freeTitle(server, space, folder, ''),
          body: `<p>Files from the folder ${folder}.</p>`,
          parentId,
        });
        seeded.pages++;
      }
      server.addAttachment(holder, entry.name, await readFile(path));
      seeded.attachments++;
    }
  }
  return seeded;
}

async function serveConfluence(
  port: number,
  space: string,
  seed: string | undefined,
  generated: GeneratedBucket[],
): Promise<number> {
  const { server, url, stop } = await startConfluenceServer({}, port);
  for (const spec of generated) {
    server.generate(spec);
    printGenerated(spec, `confluence://${spec.name}`);
  }
  server.addSpace(space, space);
  const homeId = server.addPage({
    space,
    title: `${space} Home`,
    body: `<p>Home of the ${space} space, served by the Sluice test kit.</p>`,
  });
  const seeded = seed
    ? await seedConfluence(server, space, seed, homeId)
    : { pages: 0, attachments: 0 };
  const email = 'sluice@example.com';
  const token = confluenceToken();
  server.addUser(email, token);
  console.log(
    `Confluence (test kit) serving on ${url}; space "${space}" (homepage ${homeId}) holds ${seeded.pages} seeded pages and ${seeded.attachments} attachments.`,
  );
  console.log(
    `Cloud REST v2 and v1 are under ${url}/wiki, Data Center REST v1 under ${url}/confluence (the same user).`,
  );
  console.log('Point the Sluice Confluence CLIs at it (the API token is made for this run):');
  console.log(`  export CONFLUENCE_URL=${url}/wiki`);
  console.log(`  export CONFLUENCE_EMAIL=${email}`);
  console.log(`  export CONFLUENCE_API_TOKEN=${token}`);
  console.log('  export CONFLUENCE_DEPLOYMENT=cloud');
  console.log(`  node packages/confluence-source/dist/cli.js confluence://${space} | head -3`);
  console.log(
    `  node packages/confluence-sink/dist/cli.js report confluence://page/${homeId} --dataset news < examples/data/db-out/ner-news.jsonl`,
  );
  await untilStopped();
  await stop();
  return 0;
}

async function serveFile360(
  port: number,
  folder: string,
  seed: string | undefined,
  generated: GeneratedBucket[],
): Promise<number> {
  const { server, base } = await startFile360Server({}, port);
  const folderId = server.addFolder(ENTERPRISE_WORKSPACE, folder);
  for (const spec of generated) printGenerated(spec, `file360://node/${server.generate(spec)}`);
  const seeded = seed
    ? await seedTree(seed, folderId, {
        folder: (parent, name) => server.addFolder(parent, name),
        file: (parent, name, content) => {
          server.addDocument(parent, name, content);
        },
      })
    : 0;
  const password = randomBytes(12).toString('base64url');
  server.addUser('sluice', password);
  console.log(
    `OpenText File 360 / Content Server REST (test kit) serving on ${base}; folder "${folder}" (node ${folderId}) holds ${seeded} seeded documents.`,
  );
  console.log('Point the Sluice File 360 CLIs at it (the password is made for this run):');
  console.log(`  export FILE360_URL=${base}`);
  console.log(`  export FILE360_USERNAME=sluice FILE360_PASSWORD=${password}`);
  console.log(
    `  node packages/file360-source/dist/cli.js file360://node/${folderId} --recursive | head -3`,
  );
  console.log(
    `  node packages/file360-sink/dist/cli.js 'file360://node/${folderId}/exports/{dataset}' --dataset news < examples/data/db-out/ner-news.jsonl`,
  );
  await untilStopped();
  await server.close();
  return 0;
}

async function serveCoreShare(
  port: number,
  folder: string,
  seed: string | undefined,
): Promise<number> {
  const { server, url } = await startCoreShareServer(port);
  const folderId = server.addFolder(server.rootId, folder);
  const seeded = seed
    ? await seedTree(seed, folderId, {
        folder: (parent, name) => server.addFolder(parent, name),
        file: (parent, name, content) => {
          server.addDocument(parent, name, content);
        },
      })
    : 0;
  const { clientId, clientSecret } = coreShareClient();
  server.otds.addClient(clientId, clientSecret);
  console.log(
    `OpenText File 360 / Core Share REST (test kit) serving on ${url}, OTDS on the same port; folder "${folder}" (node ${folderId}) holds ${seeded} seeded documents.`,
  );
  console.log('Point the Sluice File 360 CLIs at it (the OAuth client is made for this run):');
  console.log(`  export FILE360_URL=${url} FILE360_API=core-share FILE360_OTDS_URL=${url}`);
  console.log(`  export FILE360_CLIENT_ID=${clientId} FILE360_CLIENT_SECRET=${clientSecret}`);
  console.log(
    `  node packages/file360-source/dist/cli.js file360://node/${folderId} --recursive | head -3`,
  );
  console.log(
    `  node packages/file360-sink/dist/cli.js 'file360://node/${folderId}/exports/{dataset}' --dataset news < examples/data/db-out/ner-news.jsonl`,
  );
  await untilStopped();
  await server.close();
  return 0;
}

process.exitCode = await main();
