// A human-readable API reference, rendered on the server from the same OpenAPI document.
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- free-form spec

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

const esc = (s: unknown) =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function renderApiReference(spec: Json): string {
  const resolve = (node: Json | undefined): Json | undefined => {
    const ref = node?.$ref as string | undefined;
    if (!ref) return node;
    return resolve(ref.replace(/^#\//, '').split('/').reduce<Json>((n, k) => n?.[k], spec));
  };
  const typeOf = (schema: Json | undefined): string => {
    const s = resolve(schema);
    if (!s) return '';
    if (s.enum) return s.enum.map((v: unknown) => `<code>${esc(v)}</code>`).join(' | ');
    if (s.const !== undefined) return `<code>${esc(s.const)}</code>`;
    if (s.type === 'array') return `array of ${typeOf(s.items)}`;
    return esc([s.type].flat().join(' or '));
  };
  const fields = (schema: Json | undefined): string => {
    const s = resolve(schema);
    if (!s?.properties) return '';
    const required = new Set<string>(s.required ?? []);
    const rows = Object.entries<Json>(s.properties).map(([name, prop]) => {
      const p = resolve(prop)!;
      return `<tr><td><code>${esc(name)}</code>${required.has(name) ? ' <b>required</b>' : ''}</td><td>${typeOf(prop)}</td><td>${esc(p.description ?? prop.description)}${p.default !== undefined ? ` Default <code>${esc(p.default)}</code>.` : ''}</td></tr>`;
    });
    return `<table><tr><th>field</th><th>type</th><th>meaning</th></tr>${rows.join('')}</table>`;
  };

  const operations = Object.entries<Json>(spec.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => {
      const op = item[method] as Json;
      const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(resolve) as Json[];
      const body = op.requestBody?.content?.['application/json']?.schema;
      const responses = Object.entries<Json>(op.responses).map(
        ([status, r]) => `<li><code>${esc(status)}</code> ${esc(resolve(r)?.description)}</li>`,
      );
      return `<section id="${esc(op.operationId)}">
<h2><span class="m">${method.toUpperCase()}</span> <code>${esc(path)}</code></h2>
<p><b>${esc(op.summary)}</b>${op.security?.length === 0 ? ' (no key needed)' : ''}</p>
${op.description ? `<p>${esc(op.description)}</p>` : ''}
${params.length ? `<h3>Parameters</h3><table><tr><th>name</th><th>in</th><th>type</th><th>meaning</th></tr>${params.map((p) => `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${typeOf(p.schema)}</td><td>${esc(p.description)}</td></tr>`).join('')}</table>` : ''}
${body ? `<h3>Request body (JSON)</h3>${fields(body)}` : ''}
<h3>Responses</h3><ul>${responses.join('')}</ul>
</section>`;
    }),
  );
  const schemas = Object.keys(spec.components?.schemas ?? {})
    .filter((name) => resolve(spec.components.schemas[name])?.properties)
    .map((name) => `<section id="schema-${esc(name)}"><h2>${esc(name)}</h2>${fields(spec.components.schemas[name])}</section>`);

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(spec.info.title)} API reference</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}.m{background:#234;color:#fff;padding:0 6px;border-radius:4px}section{margin-bottom:2em}</style>
</head><body>
<h1>${esc(spec.info.title)} ${esc(spec.info.version)}: API reference</h1>
<p>${esc(spec.info.description)}</p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a>.</p>
${operations.join('\n')}
<h1>Schemas</h1>
${schemas.join('\n')}
</body></html>`;
}
