import {
  AbortedError,
  type ArchiveLimits,
  classifyLayerEntry,
  ImageArchiveError,
  LayerBudget,
  type TarEntryKind,
  type TarHeader,
} from "@contexec/core";
import type { LayerSource } from "./layer-source.js";

/*
 * Flattens image layers into one tar, by the OCI image-spec layer rules, in two passes:
 *
 * 1. Planning (headers only, layers top-down). For every path the topmost layer that has it
 *    wins; a lower entry is hidden by an upper entry at the same path (folders merge: the upper
 *    folder's metadata, the lower folder's children stay), by an upper non-folder at one of its
 *    parents, by a whiteout `.wh.NAME` of it or a parent, or by an opaque marker `.wh..wh..opq` in
 *    a parent (both apply to lower layers only, wherever they sit in their layer). Inside one
 *    layer the last entry for a path wins, as when extracting. A hard link names its target as
 *    it was when its layer was applied: an earlier entry of the same layer, else the topmost
 *    visible one below. Hostile entries are refused here, before anything is written.
 *
 * 2. Writing (write-flattened.ts). Folders first (sorted, so parents come before children; with
 *    the plan's metadata), then symlinks, fifos and empty files, all from memory; then the winning
 *    files of each layer that holds any, read once (by the offsets noted here for uncompressed
 *    layers); hard links come last, so their targets always precede them. A file that only hard
 *    links keep alive (its own name was deleted or replaced above) is written under the first of
 *    those links.
 *
 * Memory is bounded by the number of entries (a small record per visible path), never by file
 * sizes: file contents only pass through.
 */

/** The kinds of entry an image keeps (device nodes are dropped, see the README). */
export type EntryKind = Extract<TarEntryKind, "file" | "link" | "symlink" | "directory" | "fifo">;

/** One entry of the plan's output tar: a layer entry's metadata, at its path in the image. */
export interface FlatEntry extends Pick<TarHeader, "mode" | "uid" | "gid" | "mtime" | "size"> {
  /** Path inside the image, relative, no leading slash: "usr/bin/env". */
  path: string;
  kind: EntryKind;
  /** Symlink target as stored; for a hard link, the path of the entry it links to. */
  linkname: string;
}

/** An entry of a layer as the planner keeps it. */
interface LayerEntry extends FlatEntry {
  layer: number;
  ordinal: number;
  dataOffset: number;
  /** Hard links: the entry linked to, or a reference to resolve in lower layers. */
  target?: LayerEntry | LowerReference;
}

interface LowerReference {
  path: string;
  /** The link entry that needs it (for messages). */
  link: LayerEntry;
  resolved?: LayerEntry;
}

/** A file copied from a layer's stream under `out.path`. */
export interface DataCopy {
  sourcePath: string;
  size: number;
  /** Where the data starts in the layer source (for layers read by offset). */
  dataOffset: number;
  out: FlatEntry;
}

export interface FlattenPlan {
  /** Entries without data, in output order: folders (sorted), then the rest. */
  memoryEntries: FlatEntry[];
  /** Per layer index: the files to copy from that layer's stream, by entry ordinal. */
  dataCopies: Map<number, Map<number, DataCopy>>;
  /** Hard links, written last. */
  hardLinks: FlatEntry[];
  /** Device nodes left out (see README: rootless Apptainer cannot use them). */
  droppedDevices: string[];
  /** Number of entries the output will have. */
  entryCount: number;
}

export interface FlattenOptions {
  signal?: AbortSignal | undefined;
  /** Bounds on entries and uncompressed bytes (core's ArchiveLimits; generous defaults). */
  limits?: Partial<ArchiveLimits> | undefined;
}

export const OPERATION = "converting the image";

/** Pass 1: reads every layer's headers (bottom layer first in `layers`) and decides the output. */
export async function planFlatten(
  layers: readonly LayerSource[],
  options: FlattenOptions = {},
): Promise<FlattenPlan> {
  const { signal } = options;
  const budget = new LayerBudget(options.limits);
  const final = new Map<string, LayerEntry>();
  const implied = new Set<string>();
  const deleted = new Set<string>();
  const opaque = new Set<string>();
  let pending = new Map<string, LowerReference[]>();
  const droppedDevices: string[] = [];

  const hiddenByUpper = (path: string, kind: EntryKind): boolean => {
    if (final.has(path) || deleted.has(path)) return true;
    // An opaque marker at the top of a layer hides every lower entry.
    if (opaque.has("")) return true;
    // Upper layers have entries below this path, so it must stay a folder.
    if (kind !== "directory" && implied.has(path)) return true;
    for (let a = parentOf(path); a !== ""; a = parentOf(a)) {
      if (deleted.has(a) || opaque.has(a)) return true;
      const upper = final.get(a);
      if (upper && upper.kind !== "directory") return true;
    }
    return false;
  };

  for (let index = layers.length - 1; index >= 0; index--) {
    const layer = layers[index] as LayerSource;
    const what = layer.name;
    const entries = new Map<string, LayerEntry>();
    const layerDeleted = new Set<string>();
    const layerOpaque = new Set<string>();
    const lowerReferences: LowerReference[] = [];

    for await (const header of layer.readHeaders({ budget })) {
      if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
      const meaning = classifyLayerEntry(header, what, layer.member);
      if (meaning.type === "root" || meaning.type === "bookkeeping") continue;
      if (meaning.type === "opaque") {
        layerOpaque.add(meaning.dir);
        continue;
      }
      if (meaning.type === "whiteout") {
        layerDeleted.add(meaning.path);
        continue;
      }
      const { path } = meaning;
      if (meaning.kind === "character-device" || meaning.kind === "block-device") {
        droppedDevices.push(`/${path}`);
        continue;
      }
      const kind: EntryKind = meaning.kind;
      for (let a = parentOf(path); a !== ""; a = parentOf(a)) {
        const e = entries.get(a);
        if (e && e.kind !== "directory") {
          throw new ImageArchiveError(
            `${what} puts an entry inside /${a}, which the same layer makes a ${e.kind}`,
            {
              entry: header.name,
            },
          );
        }
      }
      const entry: LayerEntry = {
        path,
        kind,
        mode: header.mode,
        uid: header.uid,
        gid: header.gid,
        mtime: header.mtime,
        size: kind === "file" ? header.size : 0,
        linkname: header.linkname,
        layer: index,
        ordinal: header.ordinal,
        dataOffset: header.dataOffset,
      };
      if (meaning.linkTarget !== undefined) {
        const targetPath = meaning.linkTarget;
        entry.linkname = targetPath;
        const earlier = entries.get(targetPath);
        if (earlier) {
          if (earlier.kind === "directory") throw linkToFolder(what, header.name, targetPath);
          entry.target = earlier;
        } else {
          const reference: LowerReference = { path: targetPath, link: entry };
          lowerReferences.push(reference);
          entry.target = reference;
        }
      }
      const previous = entries.get(path);
      if (previous?.kind === "directory" && kind !== "directory") {
        // A non-folder replacing a folder of the same layer removes what the layer put in it.
        const prefix = `${path}/`;
        for (const key of entries.keys()) if (key.startsWith(prefix)) entries.delete(key);
      }
      entries.set(path, entry);
    }

    // Which of this layer's entries are visible from the top.
    for (const entry of entries.values()) {
      if (hiddenByUpper(entry.path, entry.kind)) continue;
      final.set(entry.path, entry);
      for (let a = parentOf(entry.path); a !== "" && !implied.has(a); a = parentOf(a)) implied.add(a);
    }

    // Hard links of upper layers whose target is below them: found here, deleted here, or lower.
    const stillPending = new Map<string, LowerReference[]>();
    for (const [targetPath, references] of pending) {
      const found = entries.get(targetPath);
      if (found) {
        if (found.kind === "directory")
          throw linkToFolder(what, (references[0] as LowerReference).link.path, targetPath);
        for (const r of references) r.resolved = found;
        continue;
      }
      if (blockedBy(targetPath, layerDeleted, layerOpaque, entries)) {
        throw missingTarget(references[0] as LowerReference);
      }
      stillPending.set(targetPath, references);
    }
    pending = stillPending;
    for (const r of lowerReferences) {
      const list = pending.get(r.path);
      if (list) list.push(r);
      else pending.set(r.path, [r]);
    }
    for (const p of layerDeleted) deleted.add(p);
    for (const p of layerOpaque) opaque.add(p);
  }
  for (const references of pending.values()) throw missingTarget(references[0] as LowerReference);

  return buildPlan(final, implied, droppedDevices);
}

function buildPlan(
  final: Map<string, LayerEntry>,
  implied: Set<string>,
  droppedDevices: string[],
): FlattenPlan {
  const folders: FlatEntry[] = [];
  const others: FlatEntry[] = [];
  const inodes = new Map<LayerEntry, string[]>();
  for (const entry of final.values()) {
    switch (entry.kind) {
      case "directory":
        folders.push(flat(entry, entry.path));
        break;
      case "symlink":
      case "fifo":
        others.push(flat(entry, entry.path));
        break;
      case "file":
      case "link": {
        const root = inodeOf(entry);
        if (root.kind === "file") {
          const names = inodes.get(root);
          if (names) names.push(entry.path);
          else inodes.set(root, [entry.path]);
        } else {
          // A hard link to a symlink or fifo: a copy of it is the same to every reader.
          others.push(flat(root, entry.path));
        }
        break;
      }
    }
  }
  for (const path of implied) {
    if (!final.has(path)) {
      folders.push({ path, kind: "directory", mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, linkname: "" });
    }
  }
  folders.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const dataCopies = new Map<number, Map<number, DataCopy>>();
  const hardLinks: FlatEntry[] = [];
  for (const [root, names] of inodes) {
    // The file keeps its own name when that is still visible, else takes its first link's.
    const own = final.get(root.path) === root;
    const sorted = [...names].sort();
    const primary = own ? root.path : (sorted[0] as string);
    const out = flat(root, primary);
    if (root.size === 0) others.push(out);
    else {
      let copies = dataCopies.get(root.layer);
      if (!copies) {
        copies = new Map();
        dataCopies.set(root.layer, copies);
      }
      copies.set(root.ordinal, { sourcePath: root.path, size: root.size, dataOffset: root.dataOffset, out });
    }
    for (const name of sorted) {
      if (name !== primary) hardLinks.push({ ...out, path: name, kind: "link", size: 0, linkname: primary });
    }
  }
  hardLinks.sort((a, b) => (a.path < b.path ? -1 : 1));
  let dataCount = 0;
  for (const m of dataCopies.values()) dataCount += m.size;
  return {
    memoryEntries: [...folders, ...others],
    dataCopies,
    hardLinks,
    droppedDevices,
    entryCount: folders.length + others.length + dataCount + hardLinks.length,
  };
}

function flat(e: FlatEntry, path: string): FlatEntry {
  return {
    path,
    kind: e.kind,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    mtime: e.mtime,
    size: e.size,
    linkname: e.linkname,
  };
}

/** The entry a hard link finally names (links of links followed). */
function inodeOf(entry: LayerEntry): LayerEntry {
  let e = entry;
  for (let hops = 0; e.kind === "link"; hops++) {
    const t = e.target;
    const next = t && "layer" in t ? t : t?.resolved;
    if (!next || hops > 1_000_000)
      throw new ImageArchiveError("unresolved hard link", { entry: `/${entry.path}` });
    e = next;
  }
  return e;
}

/** Whether one layer makes `path` disappear for the layers under it. */
function blockedBy(
  path: string,
  layerDeleted: Set<string>,
  layerOpaque: Set<string>,
  entries: Map<string, LayerEntry>,
) {
  if (layerDeleted.has(path) || layerOpaque.has("")) return true;
  for (let a = parentOf(path); a !== ""; a = parentOf(a)) {
    if (layerDeleted.has(a) || layerOpaque.has(a)) return true;
    const e = entries.get(a);
    if (e && e.kind !== "directory") return true;
  }
  return false;
}

function linkToFolder(what: string, entry: string, target: string): ImageArchiveError {
  return new ImageArchiveError(`${what} holds a hard link to the folder /${target}`, { entry });
}

function missingTarget(r: LowerReference): ImageArchiveError {
  return new ImageArchiveError(`a hard link points to /${r.path}, which is not in the image below it`, {
    entry: `/${r.link.path}`,
  });
}

function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i === -1 ? "" : path.slice(0, i);
}
