import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  type YAMLMap,
} from "yaml";

/** Where a value was written: a file position (1-based), or a command-line override. */
export interface SourcePos {
  /** The job file, an env file, or `--set KEY=VALUE` for an override. */
  source: string;
  /** 0 when the value has no line (an override). */
  line: number;
  col: number;
}

/**
 * A YAML value as the job-file schema reads it: maps (aliases and `<<` merge keys resolved, own
 * keys over merged ones), sequences and scalars, each with the place it was written.
 */
export type TreeNode = TreeMap | TreeSeq | TreeScalar;
export interface TreeMap {
  kind: "map";
  pos: SourcePos;
  entries: TreeEntry[];
}
export interface TreeSeq {
  kind: "seq";
  pos: SourcePos;
  items: TreeNode[];
}
export interface TreeScalar {
  kind: "scalar";
  pos: SourcePos;
  value: string | number | boolean | null;
  /** The scalar as written (`1.10`, not 1.1): what a string-typed field takes. */
  text: string;
}
export interface TreeEntry {
  key: string;
  keyPos: SourcePos;
  value: TreeNode;
}

/** A YAML syntax error, at its place. */
export interface YamlSyntaxIssue {
  pos: SourcePos;
  message: string;
}

/**
 * Parses YAML text into a {@link TreeNode} (YAML 1.2, duplicate keys refused). Syntax errors are
 * returned, not thrown, each at its line and column.
 */
export function parseYamlTree(
  text: string,
  source: string,
): { tree: TreeNode | undefined; issues: YamlSyntaxIssue[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, merge: true, uniqueKeys: true, prettyErrors: false });
  const posOf = (offset: number): SourcePos => {
    const p = lineCounter.linePos(offset);
    return { source, line: p.line, col: p.col };
  };
  const issues: YamlSyntaxIssue[] = doc.errors.map((e) => ({
    pos: posOf(e.pos[0]),
    message: e.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, ""),
  }));
  if (issues.length > 0) return { tree: undefined, issues };
  if (doc.contents === null) return { tree: undefined, issues };
  return { tree: convert(doc, doc.contents as Node, posOf, new Set()), issues };
}

function convert(doc: Document, node: Node, posOf: (offset: number) => SourcePos, seen: Set<Node>): TreeNode {
  const pos = posOf(node.range?.[0] ?? 0);
  if (isAlias(node)) {
    const target = node.resolve(doc) as Node | undefined;
    if (!target || seen.has(target)) return { kind: "scalar", pos, value: null, text: "" };
    // The alias's own place is where a reader looks for it; the value is the anchor's.
    const inner = convert(doc, target, posOf, new Set([...seen, target]));
    return inner;
  }
  if (isMap(node)) return { kind: "map", pos, entries: mapEntries(doc, node, posOf, seen) };
  if (isSeq(node)) {
    return { kind: "seq", pos, items: node.items.map((item) => convert(doc, item as Node, posOf, seen)) };
  }
  if (isScalar(node)) {
    const v = node.value;
    const value = v === null || ["string", "number", "boolean"].includes(typeof v) ? v : String(v);
    const text = typeof node.source === "string" ? node.source : v === null ? "" : String(v);
    return { kind: "scalar", pos, value: value as TreeScalar["value"], text };
  }
  return { kind: "scalar", pos, value: null, text: "" };
}

function mapEntries(
  doc: Document,
  map: YAMLMap,
  posOf: (offset: number) => SourcePos,
  seen: Set<Node>,
): TreeEntry[] {
  const own: TreeEntry[] = [];
  const merged: TreeEntry[] = [];
  for (const pair of map.items) {
    const keyNode = pair.key as Node | null;
    const keyPos = posOf(keyNode?.range?.[0] ?? map.range?.[0] ?? 0);
    const isMerge = isScalar(keyNode) && (typeof keyNode.value === "symbol" || keyNode.value === "<<");
    if (isMerge) {
      // `<<: *anchor` or `<<: [*a, *b]`: earlier maps win over later ones, own keys over all.
      const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
      for (const s of sources) {
        const resolved = convert(doc, s as Node, posOf, seen);
        if (resolved.kind !== "map") continue;
        for (const e of resolved.entries)
          if (!merged.some((m) => m.key === e.key) && !own.some((o) => o.key === e.key)) merged.push(e);
      }
      continue;
    }
    const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode ?? "");
    const valueNode = pair.value as Node | null;
    const value: TreeNode = valueNode
      ? convert(doc, valueNode, posOf, seen)
      : { kind: "scalar", pos: keyPos, value: null, text: "" };
    own.push({ key, keyPos, value });
  }
  return [...own, ...merged.filter((m) => !own.some((o) => o.key === m.key))];
}

/** The entry for `key` in a map node. */
export function entryOf(map: TreeMap, key: string): TreeEntry | undefined {
  return map.entries.find((e) => e.key === key);
}
