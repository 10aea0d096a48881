import { beforeEach } from 'vitest';
import { describeStoreConformance } from './store-conformance';
import { newPostgresSchema, openPostgresStore } from './support/postgres';

let schema: string;

beforeEach(() => {
  schema = newPostgresSchema();
});

describeStoreConformance('postgres', () => openPostgresStore(schema));
