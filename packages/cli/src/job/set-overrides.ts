import type { SourcePos, TreeEntry, TreeMap, TreeNode, TreeScalar } from "./yaml-tree.js";

/** A `--set KEY=VALUE` that cannot be applied. */
export class OverrideError extends Error {}

/** One `--set KEY=VALUE`, split: the key path's segments and the value as a scalar node. */
export function parseOverride(arg: string): { segments: string[]; value: TreeScalar } {
  const eq = arg.indexOf("=");
  if (eq <= 0)
    throw new OverrideError(`--set ${arg}: expected KEY=VALUE (command="echo hi", environment.NAME=value)`);
  const key = arg.slice(0, eq);
  const text = arg.slice(eq + 1);
  const segments = key.split(".");
  if (segments.some((s) => s === ""))
    throw new OverrideError(`--set ${arg}: "${key}" is not a key path (a.b.c)`);
  const pos: SourcePos = { source: `--set ${arg}`, line: 0, col: 0 };
  // Typed as YAML would type a plain scalar, so booleans and numbers reach fields that want them;
  // string fields still get the text as written.
  const value: TreeScalar["value"] = /^(true|false)$/.test(text)
    ? text === "true"
    : /^-?\d+(\.\d+)?$/.test(text)
      ? Number(text)
      : text;
  return { segments, value: { kind: "scalar", pos, value, text } };
}

/**
 * Sets `segments` to `value` in a tree, making the maps on the way when missing. A list met on
 * the way with a name for the next step (`environment.NAME` where environment is a list of
 * `NAME=value`) becomes the map it stands for; a number steps into a list.
 */
export function applyOverride(root: TreeMap, segments: readonly string[], value: TreeScalar): void {
  let node: TreeNode = root;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as string;
    const last = i === segments.length - 1;
    if (node.kind === "seq") {
      if (/^\d+$/.test(seg)) {
        const index = Number(seg);
        if (index > node.items.length) {
          throw new OverrideError(
            `${value.pos.source}: ${segments.slice(0, i).join(".")} has ${node.items.length} items`,
          );
        }
        if (last) {
          node.items[index] = value;
          return;
        }
        const items: TreeNode[] = node.items;
        let next = items[index];
        if (!next) {
          next = emptyMap(value.pos);
          items[index] = next;
        }
        node = next;
        continue;
      }
      node = listAsMap(node.items, node.pos, holder(root, segments.slice(0, i)));
    }
    if (node.kind !== "map") {
      throw new OverrideError(
        `${value.pos.source}: ${segments.slice(0, i).join(".")} is a single value, not a map`,
      );
    }
    let entry: TreeEntry | undefined = node.entries.find((e) => e.key === seg);
    if (last) {
      if (entry) entry.value = value;
      else node.entries.push({ key: seg, keyPos: value.pos, value });
      return;
    }
    if (!entry) {
      entry = { key: seg, keyPos: value.pos, value: emptyMap(value.pos) };
      node.entries.push(entry);
    }
    node = entry.value;
  }
}

function emptyMap(pos: SourcePos): TreeMap {
  return { kind: "map", pos, entries: [] };
}

/** The entry holding the node at `segments` (to replace a list by a map in place). */
function holder(root: TreeMap, segments: readonly string[]): TreeEntry | undefined {
  let node: TreeNode = root;
  let entry: TreeEntry | undefined;
  for (const seg of segments) {
    if (node.kind !== "map") return undefined;
    entry = node.entries.find((e) => e.key === seg);
    if (!entry) return undefined;
    node = entry.value;
  }
  return entry;
}

/** `[NAME=value, NAME, {NAME: value}]` as the map it stands for; replaces the list in its entry. */
function listAsMap(items: TreeNode[], pos: SourcePos, owner: TreeEntry | undefined): TreeMap {
  const map = emptyMap(pos);
  for (const item of items) {
    if (item.kind === "map") map.entries.push(...item.entries);
    else if (item.kind === "scalar" && typeof item.value === "string") {
      const eq = item.value.indexOf("=");
      const key = eq < 0 ? item.value : item.value.slice(0, eq);
      const v = eq < 0 ? null : item.value.slice(eq + 1);
      map.entries.push({
        key,
        keyPos: item.pos,
        value: { kind: "scalar", pos: item.pos, value: v, text: v ?? "" },
      });
    } else {
      throw new OverrideError(`${pos.source}:${pos.line}: this list cannot be addressed by name`);
    }
  }
  if (owner) owner.value = map;
  return map;
}
