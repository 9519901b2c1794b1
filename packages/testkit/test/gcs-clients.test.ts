// The test kit's Cloud Storage server checked by Google's own command-line clients, gcloud
// storage and gsutil, which share no code with the Node client the connectors use. Each
// invocation takes a second or two to start, so there are few of them. Without the tools the
// suites are skipped with a message; in CI (CI=true) they always run, so a missing tool fails.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GcsServer, startGcsServer } from '../src/gcs-server.js';

const onPath = (name: string) =>
  (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, name)));
const ci = process.env.CI === 'true';
const runGcloud = onPath('gcloud') || ci;
// gsutil speaks only HTTPS to a custom endpoint: openssl makes the certificate.
const runGsutil = (onPath('gsutil') && onPath('openssl')) || ci;
if (!runGcloud) console.warn('gcloud not found: the GCS test server is not checked with gcloud');
if (!runGsutil) {
  console.warn('gsutil or openssl not found: the GCS test server is not checked with gsutil');
}

/** A digest to compare bytes by: toEqual walks a 9 MiB Buffer element by element for a minute. */
const digest = (data: Buffer | undefined) =>
  data === undefined ? undefined : createHash('sha256').update(data).digest('hex');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: unknown }).code as number) || 1 : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

/** Files to copy: text, JSONL to store gzip-encoded, and binary above the resumable threshold. */
async function makeFiles(dir: string, bigBytes: number): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {
    'notes.txt': Buffer.from('first line\nsecond line\n'),
    'rows.jsonl': Buffer.from(
      Array.from({ length: 2000 }, (_, i) => `{"text":"row ${i}"}\n`).join(''),
    ),
    'nested/deeper/é ü.txt': Buffer.from('awkward name\n'),
    // Random bytes, so that neither gzip nor a lucky offset hides a wrong byte.
    'big.bin': randomBytes(bigBytes),
  };
  for (const [name, data] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), data);
  }
  return files;
}

describe.skipIf(!runGcloud)('gcloud storage against the test kit GCS server', () => {
  let server: GcsServer;
  let dir: string;
  let files: Record<string, Buffer>;
  let env: Record<string, string>;
  const gcloud = (...args: string[]) => run('gcloud', ['storage', ...args], env);

  beforeAll(async () => {
    let url: string;
    ({ server, url } = await startGcsServer());
    server.createBucket('tools');
    dir = await mkdtemp(join(tmpdir(), 'sluice-gcloud-'));
    await mkdir(join(dir, 'config'));
    // Above gcloud's 8 MiB threshold, so it uploads with a resumable session.
    files = await makeFiles(join(dir, 'local'), 9 * 1024 * 1024);
    // A configuration of its own, through environment variables: nothing of the user's.
    env = {
      CLOUDSDK_CONFIG: join(dir, 'config'),
      CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE: `${url}/`,
      CLOUDSDK_AUTH_DISABLE_CREDENTIALS: 'true',
      CLOUDSDK_CORE_PROJECT: 'sluice-test',
      CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
      CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
      CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
    };
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('copies files up (multipart, resumable, gzip-encoded) and down byte for byte', async () => {
    const local = join(dir, 'local');
    const up = await gcloud(
      'cp',
      join(local, 'notes.txt'),
      join(local, 'big.bin'),
      'gs://tools/up/',
    );
    expect(up.stderr).not.toMatch(/ERROR/);
    expect(up.code).toBe(0);
    expect(digest(server.getObject('tools', 'up/notes.txt')?.data)).toBe(
      digest(files['notes.txt']),
    );
    expect(digest(server.getObject('tools', 'up/big.bin')?.data)).toBe(digest(files['big.bin']));
    expect(server.requests['objects.insert(resumable)']).toBeGreaterThanOrEqual(1);
    expect(server.requests['objects.insert(multipart)']).toBeGreaterThanOrEqual(1);

    const gz = await gcloud('cp', '--gzip-local-all', join(local, 'rows.jsonl'), 'gs://tools/gz/');
    expect(gz.code).toBe(0);
    // Stored as the connectors' tests seed such objects: gzip, marked no-transform.
    const stored = server.getObject('tools', 'gz/rows.jsonl');
    expect(stored).toMatchObject({ contentEncoding: 'gzip', cacheControl: 'no-transform' });
    expect(digest(gunzipSync(stored?.data ?? Buffer.alloc(0)))).toBe(digest(files['rows.jsonl']));

    const down = join(dir, 'down');
    await mkdir(down);
    const copied = await gcloud('cp', '-r', 'gs://tools/up', 'gs://tools/gz', down);
    expect(copied.code).toBe(0);
    expect(digest(await readFile(join(down, 'up', 'notes.txt')))).toBe(digest(files['notes.txt']));
    expect(digest(await readFile(join(down, 'up', 'big.bin')))).toBe(digest(files['big.bin']));
    expect(digest(await readFile(join(down, 'gz', 'rows.jsonl')))).toBe(
      digest(files['rows.jsonl']),
    );
  }, 120_000);

  it('syncs a folder tree, then only what changed, and lists it', async () => {
    const local = join(dir, 'local');
    const first = await gcloud('rsync', '-r', local, 'gs://tools/synced');
    expect(first.code).toBe(0);
    expect(server.list('tools').filter((name) => name.startsWith('synced/'))).toEqual(
      Object.keys(files)
        .map((name) => `synced/${name}`)
        .sort(),
    );
    const generations = (name: string) => server.getObject('tools', `synced/${name}`)?.generation;
    const before = Object.fromEntries(Object.keys(files).map((name) => [name, generations(name)]));
    await writeFile(join(local, 'notes.txt'), 'first line\nchanged line\n');
    const second = await gcloud('rsync', '-r', local, 'gs://tools/synced');
    expect(second.code).toBe(0);
    expect(server.getObject('tools', 'synced/notes.txt')?.data.toString()).toBe(
      'first line\nchanged line\n',
    );
    for (const name of Object.keys(files)) {
      if (name === 'notes.txt') expect(generations(name)).not.toBe(before[name]);
      else expect(generations(name)).toBe(before[name]);
    }
    const listed = await gcloud('ls', '-r', 'gs://tools/synced/**');
    expect(listed.code).toBe(0);
    expect(listed.stdout.trim().split('\n').sort()).toEqual(
      Object.keys(files)
        .map((name) => `gs://tools/synced/${name}`)
        .sort(),
    );
  }, 120_000);
});

describe.skipIf(!runGsutil)('gsutil against the test kit GCS server', () => {
  let server: GcsServer;
  let tls: TlsServer;
  let dir: string;
  let files: Record<string, Buffer>;
  let env: Record<string, string>;
  const gsutil = (...args: string[]) => run('gsutil', args, env);

  beforeAll(async () => {
    let url: string;
    ({ server, url } = await startGcsServer());
    server.createBucket('tools');
    dir = await mkdtemp(join(tmpdir(), 'sluice-gsutil-'));
    files = await makeFiles(join(dir, 'local'), 600 * 1024);
    const key = join(dir, 'tls.key');
    const cert = join(dir, 'tls.crt');
    const made = await run(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert].concat([
        '-subj',
        '/CN=127.0.0.1',
        '-days',
        '1',
      ]),
      {},
    );
    expect(made.code).toBe(0);
    // TLS in front of the server: gsutil's JSON API endpoint is always https.
    const port = Number(new URL(url).port);
    tls = createTlsServer({ key: await readFile(key), cert: await readFile(cert) }, (socket) => {
      const upstream = connect(port, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const tlsPort = (tls.address() as { port: number }).port;
    const boto = join(dir, 'boto.cfg');
    await writeFile(
      boto,
      [
        '[Credentials]',
        'gs_json_host = 127.0.0.1',
        `gs_json_port = ${tlsPort}`,
        '[Boto]',
        'https_validate_certificates = False',
        'num_retries = 1',
        '[GSUtil]',
        'json_api_version = v1',
        'prefer_api = json',
        'default_project_id = sluice-test',
        // Lower than gsutil's default (8 MiB), so the 600 KiB file goes up resumable.
        'resumable_threshold = 262144',
        '',
      ].join('\n'),
    );
    await mkdir(join(dir, 'config'));
    env = {
      BOTO_CONFIG: boto,
      CLOUDSDK_CONFIG: join(dir, 'config'),
      CLOUDSDK_AUTH_DISABLE_CREDENTIALS: 'true',
      CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
    };
  });
  afterAll(async () => {
    tls?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('copies files up with -Z (multipart and resumable) and down, checking their hashes', async () => {
    const local = join(dir, 'local');
    const up = await gsutil(
      'cp',
      '-Z',
      join(local, 'rows.jsonl'),
      join(local, 'big.bin'),
      'gs://tools/gsutil/',
    );
    expect(up.stderr).toMatch(/Operation completed over 2 objects/);
    expect(up.code).toBe(0);
    expect(server.requests['objects.insert(resumable)']).toBe(1);
    expect(server.requests['objects.insert(multipart)']).toBe(1);
    for (const name of ['rows.jsonl', 'big.bin']) {
      const stored = server.getObject('tools', `gsutil/${name}`);
      expect(stored).toMatchObject({ contentEncoding: 'gzip', cacheControl: 'no-transform' });
      expect(digest(gunzipSync(stored?.data ?? Buffer.alloc(0)))).toBe(digest(files[name]));
    }
    const down = join(dir, 'down');
    await mkdir(down);
    // gsutil checks each download against the stored CRC32C and MD5, then decompresses it.
    const copied = await gsutil('cp', '-r', 'gs://tools/gsutil', down);
    expect(copied.code).toBe(0);
    expect(digest(await readFile(join(down, 'gsutil', 'rows.jsonl')))).toBe(
      digest(files['rows.jsonl']),
    );
    expect(digest(await readFile(join(down, 'gsutil', 'big.bin')))).toBe(digest(files['big.bin']));
    const listed = await gsutil('ls', '-l', 'gs://tools/gsutil/');
    expect(listed.stdout).toMatch(/TOTAL: 2 objects/);
  }, 120_000);
});
