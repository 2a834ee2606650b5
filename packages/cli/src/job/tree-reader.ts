import { didYouMean } from "./did-you-mean.js";
import type { JobIssue } from "./job-file-error.js";
import type { SourcePos, TreeMap, TreeNode, TreeScalar, TreeSeq } from "./yaml-tree.js";

const KIND_NAMES = { map: "a map (key: value lines)", seq: "a list", scalar: "a single value" } as const;

/**
 * Reads a {@link TreeNode} against what a key expects, collecting every problem (with its place
 * and key path) instead of stopping at the first. Each getter returns undefined after recording
 * the issue, so a reader goes on and reports the rest of the file too.
 */
export class TreeReader {
  readonly issues: JobIssue[] = [];
  readonly warnings: string[] = [];
  /** Where each field of the resulting spec came from (`env.FOO` -> its line), for core's issues. */
  readonly origins = new Map<string, SourcePos>();

  fail(at: TreeNode | SourcePos, path: string, message: string): undefined {
    this.issues.push({ pos: "kind" in at ? at.pos : at, path, message });
    return undefined;
  }

  warn(at: TreeNode | SourcePos, path: string, message: string): void {
    const pos = "kind" in at ? at.pos : at;
    const where = pos.line > 0 ? `${pos.source}:${pos.line}:${pos.col}` : pos.source;
    this.warnings.push(`${where}: ${path}: ${message}`);
  }

  origin(specPath: string, at: TreeNode | SourcePos): void {
    this.origins.set(specPath, "kind" in at ? at.pos : at);
  }

  map(node: TreeNode, path: string): TreeMap | undefined {
    return node.kind === "map" ? node : this.#wrongKind(node, path, KIND_NAMES.map);
  }

  seq(node: TreeNode, path: string): TreeSeq | undefined {
    return node.kind === "seq" ? node : this.#wrongKind(node, path, KIND_NAMES.seq);
  }

  /** A string; numbers and booleans are taken as written (`user: 1000`, `VERSION: 1.10`). */
  string(node: TreeNode, path: string, what = "a string"): string | undefined {
    if (node.kind !== "scalar" || node.value === null) return this.#wrongKind(node, path, what);
    return typeof node.value === "string" ? node.value : node.text;
  }

  /** A non-empty string. */
  text(node: TreeNode, path: string, what = "a non-empty string"): string | undefined {
    const s = this.string(node, path, what);
    if (s === "") return this.fail(node, path, `must be ${what}, not empty`);
    return s;
  }

  /** true/false (the strings "true" and "false" too, as `--set` gives them). */
  boolean(node: TreeNode, path: string): boolean | undefined {
    if (node.kind === "scalar") {
      if (typeof node.value === "boolean") return node.value;
      if (node.value === "true" || node.value === "false") return node.value === "true";
    }
    return this.#wrongKind(node, path, "true or false");
  }

  /** A string or a number, for values that are either (`cpus: 0.5`, `memory: 512m`). */
  scalar(node: TreeNode, path: string, what: string): string | number | undefined {
    if (node.kind === "scalar" && (typeof node.value === "string" || typeof node.value === "number"))
      return node.value;
    return this.#wrongKind(node, path, what);
  }

  /**
   * Checks a map's keys: `known` are read by the caller; `ignored` are accepted with a warning
   * (their reason); `refused` are known elsewhere (compose) but cannot be honoured (their reason).
   * Anything else is unknown, with the closest known key suggested. `x-*` extension keys pass.
   */
  keys(
    map: TreeMap,
    path: string,
    known: readonly string[],
    options: {
      ignored?: Record<string, string>;
      refused?: Record<string, string>;
      /** Names people write for a known key (Docker's and the spec's): `workdir` -> `working_dir`. */
      synonyms?: Record<string, string>;
      what?: string;
    } = {},
  ): void {
    for (const e of map.entries) {
      if (known.includes(e.key) || e.key.startsWith("x-")) continue;
      const keyPath = join(path, e.key);
      const ignored = options.ignored?.[e.key];
      if (ignored !== undefined) {
        this.warn(e.keyPos, keyPath, `ignored: ${ignored}`);
        continue;
      }
      const refused = options.refused?.[e.key];
      if (refused !== undefined) {
        this.fail(e.keyPos, keyPath, refused);
        continue;
      }
      const guess = options.synonyms?.[e.key] ?? didYouMean(e.key, known);
      this.fail(
        e.keyPos,
        keyPath,
        `unknown key "${e.key}"${guess ? `; did you mean "${guess}"?` : ""} (${options.what ?? "known keys"}: ${[...known].sort().join(", ")})`,
      );
    }
  }

  #wrongKind(node: TreeNode, path: string, expected: string): undefined {
    return this.fail(node, path, `must be ${expected}, not ${describe(node)}`);
  }
}

/** What a node is, for messages: `a list`, `the number 3`, `nothing (null)`. */
export function describe(node: TreeNode): string {
  if (node.kind !== "scalar") return KIND_NAMES[node.kind];
  const s = node as TreeScalar;
  if (s.value === null) return "nothing (an empty value)";
  if (typeof s.value === "boolean") return `the boolean ${s.value}`;
  if (typeof s.value === "number") return `the number ${s.text}`;
  return `the string ${JSON.stringify(s.value)}`;
}

/** `a.b` + `c` -> `a.b.c`; `a` + 2 -> `a[2]`. */
export function join(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  const k = /^[A-Za-z0-9_.-]+$/.test(key) ? key : JSON.stringify(key);
  return path ? `${path}.${k}` : k;
}
