// The spec's route template of a request path (`/v1/tasks/abc` -> `/v1/tasks/{id}`), for the `route` label of the
// request metrics: the same whichever stage answered (the early status route, a 401, a 429, the validator's 400, a
// door's route). Matched segment by segment on a tree built once from the spec: a request costs one map lookup per
// segment of its path, however many routes the spec has, and no regular expression.

/** The label of a path the spec does not have. */
export const UNMATCHED_ROUTE = 'unmatched';

interface Node {
  /** Segments spelled out in the spec (`tasks`). */
  literal: Map<string, Node>;
  /** A `{param}` segment. */
  param?: Node;
  /** The template of the route ending here. */
  template?: string;
}

const newNode = (): Node => ({ literal: new Map() });

/**
 * `(path) => template`: the spec route template matching the path (query string excluded), a spelled-out segment
 * winning over a parameter, or `unmatched`. `paths`: the spec's path templates (`/v1/tasks/{id}`).
 */
export function createRouteTemplates(paths: Iterable<string>): (path: string) => string {
  const root = newNode();
  for (const template of paths) {
    let node = root;
    for (const segment of template.split('/').slice(1)) {
      if (/^\{[^}]+\}$/.test(segment)) node = node.param ??= newNode();
      else {
        let next = node.literal.get(segment);
        if (!next) node.literal.set(segment, (next = newNode()));
        node = next;
      }
    }
    node.template = template;
  }

  /** Depth-first, literal first: `/v1/videos/generations` is not `/v1/videos/{id}`. */
  function find(node: Node, segments: string[], i: number): string | undefined {
    if (i === segments.length) return node.template;
    const segment = segments[i]!;
    const literal = node.literal.get(segment);
    const viaLiteral = literal && find(literal, segments, i + 1);
    if (viaLiteral !== undefined) return viaLiteral;
    return node.param && segment !== '' ? find(node.param, segments, i + 1) : undefined;
  }

  return (path) => {
    if (!path.startsWith('/')) return UNMATCHED_ROUTE;
    const query = path.indexOf('?');
    const segments = (query === -1 ? path : path.slice(0, query)).split('/');
    return find(root, segments, 1) ?? UNMATCHED_ROUTE;
  };
}
