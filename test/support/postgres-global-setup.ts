// vitest globalSetup: a fresh PostgreSQL database for this test run (`vidgate_test_<random>`), dropped at its end.
// The server is the one .ci/run starts (127.0.0.1:5432, trust auth); TEST_PG_URL names another. Tests read
// the new database's URL with inject('postgresUrl') (see test/support/postgres.ts). Without a server, the run goes on
// (tests that need no PostgreSQL pass) and every test that needs it fails, saying why.
import crypto from 'node:crypto';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's database, or why there is none. */
    postgres: { url: string } | { unavailable: string };
  }
}

const ADMIN_URL = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const name = `vidgate_test_${crypto.randomBytes(6).toString('hex')}`;
  try {
    await admin((c) => c.query(`CREATE DATABASE ${name}`));
  } catch (err) {
    project.provide('postgres', { unavailable: `no PostgreSQL at ${ADMIN_URL} (.ci/run starts it): ${(err as Error).message}` });
    return async () => undefined;
  }
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  project.provide('postgres', { url: url.toString() });
  return async () => {
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  };
}
