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

// The planning pass reads uncompressed layers synchronously; the event loop gets a turn this often.
const EVENT_LOOP_TURN_MS = 5;

/** Pass 1: reads every layer's headers (bottom layer first in `layers`) and decides the output. */
export async function planFlatten(
  layers: readonly LayerSource[],
  options: FlattenOptions = {},
): Promise<FlattenPlan> {
  const { signal } = options;
  const budget = new LayerBudget(options.limits);
  const planner = new FlattenPlanner();
  for (let index = layers.length - 1; index >= 0; index--) {
    const layer = layers[index] as LayerSource;
    const current = planner.startLayer(index, layer);
    if (layer.readHeadersSync) {
      const headers = layer.readHeadersSync({ budget });
      try {
        // Slices of a few milliseconds, with a turn for the event loop (and a look at the
        // signal) between them.
        while (!addSlice(headers, current)) {
          await new Promise((resolve) => setImmediate(resolve));
          if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
        }
      } finally {
        headers.return(undefined);
      }
    } else {
      for await (const header of layer.readHeaders({ budget })) {
        if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
        current.add(header);
      }
    }
    if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
    planner.endLayer(current);
  }
  return planner.finish();
}

/** Adds headers for a few milliseconds; true when there are no more. */
function addSlice(headers: Generator<TarHeader>, layer: LayerPlanner): boolean {
  const until = performance.now() + EVENT_LOOP_TURN_MS;
  for (;;) {
    const next = headers.next();
    if (next.done) return true;
    layer.add(next.value);
    if ((next.value.ordinal & 255) === 255 && performance.now() > until) return false;
  }
}

/*
 * The planning pass's state, apart from the reading: small methods, each doing one thing per
 * entry, so that V8 optimizes them early and once (one large async function with every rule in it
 * was recompiled four times in a conversion, at more CPU than the planning itself).
 */

/** What the layers above the current one decided. */
class FlattenPlanner {
  readonly final = new Map<string, LayerEntry>();
  readonly implied = new Set<string>();
  readonly deleted = new Set<string>();
  readonly opaque = new Set<string>();
  pending = new Map<string, LowerReference[]>();
  readonly droppedDevices: string[] = [];

  startLayer(index: number, layer: LayerSource): LayerPlanner {
    return new LayerPlanner(index, layer.name, layer.member, this.droppedDevices);
  }

  endLayer(layer: LayerPlanner): void {
    this.#addVisible(layer.entries);
    this.#resolvePending(layer);
    for (const p of layer.deleted) this.deleted.add(p);
    for (const p of layer.opaque) this.opaque.add(p);
  }

  /**
   * Adds the layer's entries that are visible from the top. A folder's answer, once known, holds
   * for the whole layer: an entry of this layer never hides another one of it (an entry under a
   * non-folder of its own layer comes before it, or is refused).
   */
  #addVisible(entries: Map<string, LayerEntry>): void {
    const hiddenFolders = new Map<string, boolean>();
    for (const entry of entries.values()) {
      if (this.#hiddenByUpper(entry.path, entry.kind, hiddenFolders)) continue;
      this.final.set(entry.path, entry);
      for (let a = parentOf(entry.path); a !== "" && !this.implied.has(a); a = parentOf(a))
        this.implied.add(a);
    }
  }

  /** Hard links of upper layers whose target is below them: found here, deleted here, or lower. */
  #resolvePending(layer: LayerPlanner): void {
    const { entries } = layer;
    const stillPending = new Map<string, LowerReference[]>();
    for (const [targetPath, references] of this.pending) {
      const found = entries.get(targetPath);
      if (found) {
        if (found.kind === "directory")
          throw linkToFolder(layer.what, (references[0] as LowerReference).link.path, targetPath);
        for (const r of references) r.resolved = found;
        continue;
      }
      if (blockedBy(targetPath, layer.deleted, layer.opaque, entries)) {
        throw missingTarget(references[0] as LowerReference);
      }
      stillPending.set(targetPath, references);
    }
    this.pending = stillPending;
    for (const r of layer.lowerReferences) {
      const list = this.pending.get(r.path);
      if (list) list.push(r);
      else this.pending.set(r.path, [r]);
    }
  }

  finish(): FlattenPlan {
    for (const references of this.pending.values()) throw missingTarget(references[0] as LowerReference);
    return buildPlan(this.final, this.implied, this.droppedDevices);
  }

  #hiddenByUpper(path: string, kind: EntryKind, hiddenFolders: Map<string, boolean>): boolean {
    if (this.final.has(path) || this.deleted.has(path)) return true;
    // An opaque marker at the top of a layer hides every lower entry.
    if (this.opaque.has("")) return true;
    // Upper layers have entries below this path, so it must stay a folder.
    if (kind !== "directory" && this.implied.has(path)) return true;
    return this.#folderHidden(parentOf(path), hiddenFolders);
  }

  /** Whether an upper layer deletes `folder` or one above it, hides its content, or replaces it. */
  #folderHidden(folder: string, known: Map<string, boolean>): boolean {
    if (folder === "") return false;
    return known.get(folder) ?? this.#decideFolders(folder, known);
  }

  /** Decides `folder` and the folders above it not decided yet, top down, and notes them. */
  #decideFolders(folder: string, known: Map<string, boolean>): boolean {
    const undecided: string[] = [];
    let hidden = false;
    for (let f = folder; f !== ""; f = parentOf(f)) {
      const answer = known.get(f);
      if (answer !== undefined) {
        hidden = answer;
        break;
      }
      undecided.push(f);
    }
    for (let i = undecided.length - 1; i >= 0; i--) {
      const f = undecided[i] as string;
      if (!hidden) {
        const upper = this.final.get(f);
        hidden =
          this.deleted.has(f) || this.opaque.has(f) || (upper !== undefined && upper.kind !== "directory");
      }
      known.set(f, hidden);
    }
    return hidden;
  }
}

/** One layer's entries as read, before the layers above decide which are visible. */
class LayerPlanner {
  readonly entries = new Map<string, LayerEntry>();
  readonly deleted = new Set<string>();
  readonly opaque = new Set<string>();
  readonly lowerReferences: LowerReference[] = [];
  /** Folders with no non-folder entry of this layer at them or above them. */
  readonly #clearFolders = new Set<string>();

  constructor(
    readonly index: number,
    readonly what: string,
    readonly member: string | undefined,
    readonly droppedDevices: string[],
  ) {}

  add(header: TarHeader): void {
    // The checks every backend runs on every entry (core's), then what the flattener makes of it.
    const meaning = classifyLayerEntry(header, this.what, this.member);
    switch (meaning.type) {
      case "root": // the root's own metadata is fixed: 0755, root-owned
      case "bookkeeping":
        return;
      case "opaque":
        this.opaque.add(meaning.dir);
        return;
      case "whiteout":
        this.deleted.add(meaning.path);
        return;
    }
    const { path } = meaning;
    if (meaning.kind === "character-device" || meaning.kind === "block-device") {
      this.droppedDevices.push(`/${path}`);
      return;
    }
    const kind: EntryKind = meaning.kind;
    this.#checkFolder(parentOf(path), header.name);
    const entry: LayerEntry = {
      path,
      kind,
      mode: header.mode,
      uid: header.uid,
      gid: header.gid,
      mtime: header.mtime,
      size: kind === "file" ? header.size : 0,
      linkname: header.linkname,
      layer: this.index,
      ordinal: header.ordinal,
      dataOffset: header.dataOffset,
      // Present from the start, so that every entry has one shape (V8 optimizes for one).
      target: undefined,
    };
    if (meaning.linkTarget !== undefined) this.#link(entry, header, meaning.linkTarget);
    const previous = this.entries.get(path);
    if (kind !== "directory") {
      if (previous?.kind === "directory") {
        // A non-folder replacing a folder of the same layer removes what the layer put in it.
        const prefix = `${path}/`;
        for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key);
      }
      if (this.#clearFolders.has(path)) this.#clearFolders.clear();
    }
    this.entries.set(path, entry);
  }

  /** Refuses an entry inside `folder` when this layer made it, or a folder above it, a non-folder. */
  #checkFolder(folder: string, name: string): void {
    if (folder === "" || this.#clearFolders.has(folder)) return;
    const e = this.entries.get(folder);
    if (e && e.kind !== "directory") {
      throw new ImageArchiveError(
        `${this.what} puts an entry inside /${folder}, which the same layer makes a ${e.kind}`,
        { entry: name },
      );
    }
    this.#checkFolder(parentOf(folder), name);
    this.#clearFolders.add(folder);
  }

  #link(entry: LayerEntry, header: TarHeader, targetPath: string): void {
    entry.linkname = targetPath;
    const earlier = this.entries.get(targetPath);
    if (earlier) {
      if (earlier.kind === "directory") throw linkToFolder(this.what, header.name, targetPath);
      entry.target = earlier;
    } else {
      const reference: LowerReference = { path: targetPath, link: entry };
      this.lowerReferences.push(reference);
      entry.target = reference;
    }
  }
}

// buildPlan's loops are functions of their own: one function holding them all was optimized while
// its first loop ran, then thrown away when the later ones ran, twice.

function buildPlan(
  final: Map<string, LayerEntry>,
  implied: Set<string>,
  droppedDevices: string[],
): FlattenPlan {
  // Entries go into the plan as they are (a LayerEntry is a FlatEntry); copies only where the
  // output differs (another name, a link).
  const folders: FlatEntry[] = [];
  const others: FlatEntry[] = [];
  const inodes = sortEntries(final, folders, others);
  addImpliedFolders(final, implied, folders);
  folders.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const dataCopies = new Map<number, Map<number, DataCopy>>();
  const hardLinks: FlatEntry[] = [];
  placeFiles(final, inodes, others, dataCopies, hardLinks);
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

/** Folders and symlinks and fifos into their lists; each file's inode, with the visible hard links to it (null: none). */
function sortEntries(
  final: Map<string, LayerEntry>,
  folders: FlatEntry[],
  others: FlatEntry[],
): Map<LayerEntry, string[] | null> {
  const inodes = new Map<LayerEntry, string[] | null>();
  for (const entry of final.values()) {
    switch (entry.kind) {
      case "directory":
        folders.push(entry);
        break;
      case "symlink":
      case "fifo":
        others.push(entry);
        break;
      case "file":
        if (!inodes.has(entry)) inodes.set(entry, null);
        break;
      case "link": {
        const root = inodeOf(entry);
        if (root.kind === "file") {
          const links = inodes.get(root);
          if (links) links.push(entry.path);
          else inodes.set(root, [entry.path]);
        } else {
          // A hard link to a symlink or fifo: a copy of it is the same to every reader.
          others.push(flat(root, entry.path));
        }
        break;
      }
    }
  }
  return inodes;
}

/** Folders that upper entries need and no layer has: root-owned, 0755. */
function addImpliedFolders(final: Map<string, LayerEntry>, implied: Set<string>, folders: FlatEntry[]): void {
  for (const path of implied) {
    if (!final.has(path)) {
      folders.push({ path, kind: "directory", mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, linkname: "" });
    }
  }
}

/** Each file under its name (or its first link's), its data to copy, and its other links. */
function placeFiles(
  final: Map<string, LayerEntry>,
  inodes: Map<LayerEntry, string[] | null>,
  others: FlatEntry[],
  dataCopies: Map<number, Map<number, DataCopy>>,
  hardLinks: FlatEntry[],
): void {
  for (const [root, links] of inodes) {
    // The file keeps its own name when that is still visible, else takes its first link's.
    const own = final.get(root.path) === root;
    links?.sort();
    const primary = own ? root.path : ((links as string[])[0] as string);
    const out = own ? root : flat(root, primary);
    if (root.size === 0) others.push(out);
    else {
      let copies = dataCopies.get(root.layer);
      if (!copies) {
        copies = new Map();
        dataCopies.set(root.layer, copies);
      }
      copies.set(root.ordinal, { sourcePath: root.path, size: root.size, dataOffset: root.dataOffset, out });
    }
    if (links) addLinks(root, links, primary, hardLinks);
  }
}

function addLinks(root: LayerEntry, links: string[], primary: string, hardLinks: FlatEntry[]): void {
  for (const name of links) {
    if (name === primary) continue;
    const link = flat(root, name);
    link.kind = "link";
    link.size = 0;
    link.linkname = primary;
    hardLinks.push(link);
  }
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
