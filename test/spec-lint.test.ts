// The spec, linted with Redocly's maintained OpenAPI linter: its recommended rules, plus vidgate's own that every
// operation and every schema property is described, with an example.
import { createConfig, lint, type Oas3Rule } from '@redocly/openapi-core';
import { describe, expect, it } from 'vitest';
import { SPEC_PATH } from '../src/http/app';

type Schema = Record<string, unknown> & { $ref?: string; type?: unknown; properties?: object; items?: Schema; const?: unknown };

/** Every property has a description and an example, on itself or on the schema it refers to; objects are exempt from examples (theirs are made of their properties'). */
const propertyDescribed: Oas3Rule = () => ({
  SchemaProperties: {
    enter(node, ctx) {
      for (const [name, property] of Object.entries(node as Record<string, Schema>)) {
        const target = (property.$ref ? (ctx.resolve(property as never).node as unknown as Schema | undefined) : property) ?? {};
        const has = (key: string) => property[key] !== undefined || target[key] !== undefined;
        const items = (target.items?.$ref ? (ctx.resolve(target.items as never).node as unknown as Schema) : target.items) ?? {};
        const isObject = (s: Schema) => s.properties !== undefined || s.type === 'object';
        if (!has('description')) ctx.report({ message: `property '${name}' has no description`, location: ctx.location.child(name) });
        if (!has('example') && !has('examples') && !has('const') && !isObject(target) && !isObject(items)) {
          ctx.report({ message: `property '${name}' has no example`, location: ctx.location.child(name) });
        }
      }
    },
  },
});

describe('openapi/vidgate.yaml', () => {
  it('passes the linter with no warning', async () => {
    const config = await createConfig({
      extends: ['recommended-strict'],
      plugins: [{ id: 'vidgate', rules: { oas3: { 'property-described': propertyDescribed } } }],
      rules: {
        'operation-description': 'error',
        'parameter-description': 'error',
        'vidgate/property-described': 'error',
        'info-license': 'off', // an internal service, not published
        'operation-4xx-response': 'off', // the probes, the metrics and the spec answer no client error
      },
    });
    const problems = await lint({ ref: SPEC_PATH, config });
    const report = problems.map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`);
    expect(report).toEqual([]);
  });
});
