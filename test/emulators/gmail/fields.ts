// Partial responses: the `fields` parameter of Google APIs, e.g.
// "messages(id,threadId),nextPageToken" or "payload/headers,id".

export type FieldTree = Map<string, FieldTree | null>;

/** Parses a fields selector; null (select everything) for "*" or an empty selector. */
export function parseFields(text: string): FieldTree | null {
  let pos = 0;
  const parseList = (close: string): FieldTree => {
    const tree: FieldTree = new Map();
    while (pos < text.length) {
      const c = text[pos];
      if (c === close) {
        pos++;
        break;
      }
      if (c === ',' || c === ' ') {
        pos++;
        continue;
      }
      parsePath(tree, close);
    }
    return tree;
  };
  const parsePath = (tree: FieldTree, close: string): void => {
    const m = /^[A-Za-z0-9_*]+/.exec(text.slice(pos));
    if (!m) {
      pos++;
      return;
    }
    const name = m[0];
    pos += name.length;
    let sub: FieldTree | null = null;
    if (text[pos] === '/') {
      pos++;
      sub = (tree.get(name) as FieldTree | null | undefined) ?? new Map();
      parsePath(sub, close);
    } else if (text[pos] === '(') {
      pos++;
      const inner = parseList(')');
      const prev = tree.get(name);
      sub = prev ? new Map([...prev, ...inner]) : inner;
    }
    if (tree.has(name) && tree.get(name) === null) return;
    tree.set(name, sub);
  };
  const tree = parseList('');
  return tree.size === 0 || tree.has('*') ? null : tree;
}

export function applyFields(value: unknown, tree: FieldTree | null): unknown {
  if (tree === null || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => applyFields(v, tree));
  const out: Record<string, unknown> = {};
  for (const [key, sub] of tree) {
    if (key in (value as Record<string, unknown>)) {
      out[key] = applyFields((value as Record<string, unknown>)[key], sub);
    }
  }
  return out;
}
