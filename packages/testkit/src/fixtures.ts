// Test-only helpers (they use vitest hooks); the standalone serve command does not load them.
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { IdempotencyStrategy, Storage } from '@google-cloud/storage';
import { drive_v3 } from '@googleapis/drive';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll } from 'vitest';
import {
  type ConfluenceServer,
  type ConfluenceServerOptions,
  confluenceToken,
  startConfluenceServer,
} from './confluence-server.js';
import {
  type CoreShareServer,
  coreShareClient,
  startCoreShareServer,
} from './core-share-server.js';
import {
  type File360Server,
  type File360ServerOptions,
  startFile360Server,
} from './file360-server.js';
import {
  type GcsServer,
  type GcsServerOptions,
  serviceAccount,
  startGcsServer,
} from './gcs-server.js';
import { type DriveServer, type DriveServerOptions, startDriveServer } from './gdrive-server.js';
import { type S3Server, type S3ServerName, startS3 } from './s3.js';

/**
 * For a test file: starts the named server before its tests with the buckets created, and
 * stops it after them. Read `server` and `s3` inside tests (they are set by then).
 */
export function useS3(
  name: S3ServerName,
  ...buckets: string[]
): { server: S3Server; s3: S3Client } {
  const context = {} as { server: S3Server; s3: S3Client };
  beforeAll(async () => {
    context.server = await startS3(name);
    context.s3 = new S3Client(context.server.clientConfig);
    for (const bucket of buckets)
      await context.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }, 60_000);
  afterAll(async () => {
    context.s3?.destroy();
    await context.server?.stop();
  });
  return context;
}

/**
 * For a test file: starts the Cloud Storage test server with the buckets created and a
 * service account registered (a key pair made for the run), and a `Storage` client that signs
 * URLs with that account. Read the fields inside tests.
 */
export function useGcs(
  buckets: string[],
  options: GcsServerOptions = {},
): {
  server: GcsServer;
  url: string;
  storage: Storage;
  credentials: { client_email: string; private_key: string };
} {
  const context = {} as ReturnType<typeof useGcs>;
  beforeAll(async () => {
    const { server, url } = await startGcsServer(options);
    const account = serviceAccount();
    server.addServiceAccount(account.client_email, account.public_key);
    for (const bucket of buckets) server.createBucket(bucket);
    context.server = server;
    context.url = url;
    context.credentials = {
      client_email: account.client_email,
      private_key: account.private_key,
    };
    context.storage = new Storage({
      apiEndpoint: url,
      projectId: 'sluice-test',
      credentials: context.credentials,
      // Set-up writes retry too (the default stops retrying a Storage after an upload
      // without preconditions), and retries wait at most a second.
      retryOptions: { maxRetryDelay: 1, idempotencyStrategy: IdempotencyStrategy.RetryAlways },
    });
  });
  afterAll(async () => {
    await context.server?.close();
  });
  return context;
}

/**
 * For a test file: starts the Drive test server with an access token registered, and a
 * Drive client (Google's own, `@googleapis/drive`) that uses it. Read the fields inside tests.
 */
export function useDrive(options: DriveServerOptions = {}): {
  server: DriveServer;
  url: string;
  token: string;
  drive: drive_v3.Drive;
} {
  const context = {} as ReturnType<typeof useDrive>;
  beforeAll(async () => {
    const { server, url } = await startDriveServer(options);
    context.server = server;
    context.url = url;
    context.token = `ya29.test-${randomBytes(12).toString('hex')}`;
    server.addToken(context.token);
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: context.token });
    context.drive = new drive_v3.Drive({ auth, rootUrl: `${url}/` });
  });
  afterAll(async () => {
    await context.server?.close();
  });
  return context;
}

/**
 * For a test file: starts the Confluence test server with a user (`reader@example.com` and an
 * API token made for the run, for Basic auth) and a bearer token registered. Cloud's base is
 * `cloudBase` (`${url}/wiki`), Data Center's `dcBase` (`${url}/confluence`). Read the fields
 * inside tests.
 */
export function useConfluence(options: ConfluenceServerOptions = {}): {
  server: ConfluenceServer;
  url: string;
  cloudBase: string;
  dcBase: string;
  email: string;
  apiToken: string;
  bearer: string;
} {
  const context = {} as ReturnType<typeof useConfluence>;
  beforeAll(async () => {
    const { server, url } = await startConfluenceServer(options);
    context.server = server;
    context.url = url;
    context.cloudBase = `${url}/wiki`;
    context.dcBase = `${url}/confluence`;
    context.email = 'reader@example.com';
    context.apiToken = confluenceToken();
    context.bearer = `pat-${randomBytes(18).toString('base64url')}`;
    server.addUser(context.email, context.apiToken);
    server.addToken(context.bearer);
  });
  afterAll(async () => {
    await context.server?.close();
  });
  return context;
}

/**
 * For a test file: starts the OpenText Content Server test server with a user (`annotator` and
 * a password made for the run, for POST /api/v1/auth) and a bearer token registered. `base` is
 * `url` plus the server's basePath (`/otcs/cs.exe` by default). Read the fields inside tests.
 */
export function useFile360(options: File360ServerOptions = {}): {
  server: File360Server;
  url: string;
  base: string;
  username: string;
  password: string;
  token: string;
} {
  const context = {} as ReturnType<typeof useFile360>;
  beforeAll(async () => {
    const { server, url, base } = await startFile360Server(options);
    context.server = server;
    context.url = url;
    context.base = base;
    context.username = 'annotator';
    context.password = randomBytes(12).toString('base64url');
    context.token = `otds-${randomBytes(18).toString('base64url')}`;
    server.addUser(context.username, context.password);
    server.addToken(context.token);
  });
  afterAll(async () => {
    await context.server?.close();
  });
  return context;
}

/**
 * For a test file: starts the test kit's Core Share server with an OAuth client (`clientId`,
 * `clientSecret`) and a user (`username`, `password`) that OTDS, on the same server
 * (`otdsUrl`), hands tokens to. `rootId` is the user's root folder. Read the fields inside
 * tests.
 */
export function useCoreShare(): {
  server: CoreShareServer;
  url: string;
  otdsUrl: string;
  clientId: string;
  clientSecret: string;
  username: string;
  password: string;
  rootId: string;
} {
  const context = {} as ReturnType<typeof useCoreShare>;
  beforeAll(async () => {
    const { server, url } = await startCoreShareServer();
    const { clientId, clientSecret } = coreShareClient();
    Object.assign(context, {
      server,
      url,
      otdsUrl: url,
      clientId,
      clientSecret,
      username: 'annotator@acme.example',
      password: randomBytes(12).toString('base64url'),
      rootId: server.rootId,
    });
    server.otds.addClient(clientId, clientSecret);
    server.otds.addUser(context.username, context.password);
  });
  afterAll(async () => {
    await context.server?.close();
  });
  return context;
}
