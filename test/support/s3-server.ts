// A real S3-compatible server for tests: s3rver (npm) on 127.0.0.1, on a free port, over a temporary directory,
// with one bucket; and a client to look at what it holds.
import fs from 'node:fs';
import { ListObjectsV2Command, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { tempDir } from './gateway';

/** s3rver's fixed credentials: it checks each request's signature against them. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface TestS3 {
  endpoint: string;
  bucket: string;
  client: S3Client;
  /** Every object key in the bucket under `prefix`, sorted. */
  keys(prefix?: string): Promise<string[]>;
  /** An object's bytes. */
  bytes(key: string): Promise<Buffer>;
  close(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1 with `bucket`; on `port`, or a free one. */
export async function startTestS3(bucket = 'videos', port = 0): Promise<TestS3> {
  const dir = tempDir('vidgate-s3rver-');
  const server = new S3rver({ address: '127.0.0.1', port, directory: dir, silent: true, configureBuckets: [{ name: bucket, configs: [] }] });
  const endpoint = `http://127.0.0.1:${(await server.run()).port}`;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3RVER_CREDENTIALS, requestChecksumCalculation: 'WHEN_REQUIRED' });
  return {
    endpoint,
    bucket,
    client,
    async keys(prefix = '') {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      return (listed.Contents ?? []).map((o) => o.Key!).sort();
    },
    async bytes(key) {
      const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await got.Body!.transformToByteArray());
    },
    async close() {
      client.destroy();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
