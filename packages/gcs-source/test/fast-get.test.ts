import { Storage } from '@google-cloud/storage';
import { startGcsServer, useGcs } from '@sluice/testkit';
import { OAuth2Client } from 'google-auth-library';
import { describe, expect, it } from 'vitest';
import { createFastGet } from '../src/fast-get.js';

async function bytes(body: AsyncIterable<Uint8Array> | undefined): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body ?? []) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString();
}

// The lean read path the CLIs use: same bytes as the library, and anything unusual handed back.
describe('fast reads from Cloud Storage', () => {
  const kit = useGcs(['fast']);

  it('reads whole objects, ranges and generations of names that need escaping', async () => {
    const name = "dir/with space/it's (1)+ü*#?.txt";
    const stored = kit.server.putObject('fast', name, 'hello, world');
    const fast = createFastGet(kit.storage, 'fast', 4);
    expect(fast).toBeDefined();
    expect(await bytes(await fast?.get(name, {}))).toBe('hello, world');
    expect(
      await bytes(await fast?.get(name, { range: 'bytes=7-', generation: stored.generation })),
    ).toBe('world');
    fast?.close();
  });

  it('hands a missing object or a replaced generation back to the library', async () => {
    const old = kit.server.putObject('fast', 'moving.txt', 'one');
    kit.server.putObject('fast', 'moving.txt', 'two');
    const fast = createFastGet(kit.storage, 'fast', 4);
    expect(await fast?.get('not-here.txt', {})).toBeUndefined();
    expect(await fast?.get('moving.txt', { generation: old.generation })).toBeUndefined();
    fast?.close();
  });

  it('refuses a body that does not match its CRC32C', async () => {
    const stored = kit.server.putObject('fast', 'corrupt.txt', 'the real bytes');
    stored.crc32c = 'AAAAAA==';
    const fast = createFastGet(kit.storage, 'fast', 4);
    await expect(bytes(await fast?.get('corrupt.txt', {}))).rejects.toThrow(
      /do not match the object's CRC32C/,
    );
    fast?.close();
  });

  it('sends the credentials the client would send, and none to an emulator', async () => {
    const { server, url, stop } = await startGcsServer({ requireAuth: true });
    try {
      server.createBucket('private');
      server.putObject('private', 'a.txt', 'secret text');
      server.addToken('ya29.test-token');
      const auth = new OAuth2Client();
      auth.setCredentials({ access_token: 'ya29.test-token' });
      const storage = new Storage({
        apiEndpoint: url,
        projectId: 'p',
        authClient: auth,
        useAuthWithCustomEndpoint: true,
      });
      const fast = createFastGet(storage, 'private', 4);
      expect(await bytes(await fast?.get('a.txt', {}))).toBe('secret text');
      fast?.close();
      const anonymous = createFastGet(
        new Storage({ apiEndpoint: url, projectId: 'p' }),
        'private',
        4,
      );
      expect(await anonymous?.get('a.txt', {})).toBeUndefined(); // 401: back to the library
      anonymous?.close();
    } finally {
      await stop();
    }
  });
});
