#!/usr/bin/env node
// The bare @aws-sdk/client-s3 peer: list a prefix, GET every object with N requests in flight,
// discard the bytes. `node bench/sdk-loop.mjs s3://bucket/prefix N`; endpoint and credentials
// from the environment (AWS_ENDPOINT_URL_S3 ...). Prints {objects, bytes} as JSON on stderr.
import { GetObjectCommand, paginateListObjectsV2, S3Client } from '@aws-sdk/client-s3';

const [url, concurrency = '16'] = process.argv.slice(2);
const { hostname: bucket, pathname } = new URL(url);
const client = new S3Client({ forcePathStyle: true });

async function* keys() {
  for await (const page of paginateListObjectsV2(
    { client },
    { Bucket: bucket, Prefix: pathname.slice(1) },
  )) {
    for (const object of page.Contents ?? []) yield object.Key;
  }
}

const listing = keys();
let objects = 0;
let bytes = 0;
async function worker() {
  for (;;) {
    const next = await listing.next();
    if (next.done) return;
    const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: next.value }));
    for await (const chunk of response.Body) bytes += chunk.length;
    objects++;
  }
}
await Promise.all(Array.from({ length: Number(concurrency) }, worker));
client.destroy();
console.error(JSON.stringify({ objects, bytes }));
