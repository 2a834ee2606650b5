import { ImageArchiveError, throwIfAborted } from "../errors.js";
import { fileByteSource, fileByteSourceSync, streamByteSource } from "./byte-source.js";
import type { ArchiveLayer, ImageArchive } from "./image-archive.js";
import {
  type ArchiveLimits,
  type ContentKind,
  classifyLayerEntry,
  LayerBudget,
  printable,
} from "./layer-entries.js";
import { openLayer } from "./open-layer.js";
import { type ReadTarOptions, readTarHeaders, readTarHeadersSync, type TarHeader } from "./tar-headers.js";

export interface ReadLayerOptions {
  signal?: AbortSignal;
  /** Counts the layer's uncompressed bytes and entries (shared across the layers of an image). */
  budget?: LayerBudget;
}

/**
 * The entry headers of one layer of an image archive file, data skipped: by offset for an
 * uncompressed layer (file data is never read), else through the layer's decompressor. With a
 * budget, every uncompressed byte and every entry is counted before it is read, so a
 * decompression bomb stops at the limit.
 */
export async function* readLayerHeaders(
  archivePath: string,
  layer: ArchiveLayer,
  options: ReadLayerOptions = {},
): AsyncGenerator<TarHeader> {
  const { budget, signal } = options;
  const tarOptions = layerTarOptions(layer, budget);
  const counted = async function* (headers: AsyncGenerator<TarHeader>) {
    try {
      for await (const header of headers) {
        budget?.takeEntry(layer.member, header.name);
        yield header;
      }
    } catch (err) {
      if (err instanceof ImageArchiveError) err.member ??= layer.member;
      throw err;
    }
  };
  if (layer.compression === "none") {
    const source = await fileByteSource(archivePath, {
      start: layer.dataOffset,
      end: layer.dataOffset + layer.size,
    });
    try {
      yield* counted(readTarHeaders(source, tarOptions));
    } finally {
      await source.close();
    }
    return;
  }
  const opened = openLayer(archivePath, layer, { ...(signal && { signal }) });
  try {
    yield* counted(readTarHeaders(streamByteSource(opened.stream), tarOptions));
  } finally {
    opened.destroy();
  }
}

/**
 * {@link readLayerHeaders} for a layer stored uncompressed, read synchronously: the same headers,
 * checks and budget, without a promise per read and per entry (for a layer of thousands of entries,
 * a third of the reading CPU). The caller gives the event loop its turns. The file is opened when
 * iteration starts and closed when it ends or is abandoned.
 */
export function* readLayerHeadersSync(
  archivePath: string,
  layer: ArchiveLayer,
  options: Pick<ReadLayerOptions, "budget"> = {},
): Generator<TarHeader> {
  if (layer.compression !== "none") {
    throw new TypeError(
      `readLayerHeadersSync reads uncompressed layers; ${layer.member} is ${layer.compression}`,
    );
  }
  const { budget } = options;
  const source = fileByteSourceSync(archivePath, {
    start: layer.dataOffset,
    end: layer.dataOffset + layer.size,
  });
  try {
    for (const header of readTarHeadersSync(source, layerTarOptions(layer, budget))) {
      budget?.takeEntry(layer.member, header.name);
      yield header;
    }
  } catch (err) {
    if (err instanceof ImageArchiveError) err.member ??= layer.member;
    throw err;
  } finally {
    source.closeSync();
  }
}

/** The tar reader's options for a layer: named in messages, every byte taken from the budget. */
function layerTarOptions(layer: ArchiveLayer, budget: LayerBudget | undefined): ReadTarOptions {
  return {
    what: `layer ${layer.member}`,
    ...(budget && { onBytes: (n: number) => budget.takeBytes(n, layer.member) }),
  };
}

export interface CheckLayersOptions {
  signal?: AbortSignal;
  limits?: Partial<ArchiveLimits>;
}

/**
 * Reads every layer of an image archive file, bottom layer first, and refuses the image with
 * {@link ImageArchiveError} when an entry is hostile or unsupported, a hard link names nothing
 * (or a folder), or a limit is passed: the checks of `classifyLayerEntry`, plus what needs the
 * layers below (a hard link's target). Nothing is written. Every backend runs this before it
 * takes in an image, so all of them refuse the same archives alike.
 */
export async function checkImageLayers(
  archivePath: string,
  archive: Pick<ImageArchive, "layers">,
  options: CheckLayersOptions = {},
): Promise<void> {
  const { signal } = options;
  const budget = new LayerBudget(options.limits);
  const below = new ImageTree();
  for (const layer of archive.layers) {
    throwIfAborted(signal, "checking the image's layers");
    const what = `layer ${layer.member}`;
    const own = new ImageTree();
    const deleted: string[] = [];
    const opaque: string[] = [];
    for await (const header of readLayerHeaders(archivePath, layer, { budget, ...(signal && { signal }) })) {
      const meaning = classifyLayerEntry(header, what, layer.member);
      const refuse = (message: string) =>
        new ImageArchiveError(`${what} ${message}`, { entry: printable(header.name), member: layer.member });
      switch (meaning.type) {
        case "root":
        case "bookkeeping":
          continue;
        case "whiteout":
          deleted.push(meaning.path);
          continue;
        case "opaque":
          opaque.push(meaning.dir);
          continue;
      }
      const blocker = own.nonFolderAbove(meaning.path);
      if (blocker) {
        throw refuse(`puts an entry inside /${blocker.path}, which the same layer makes a ${blocker.kind}`);
      }
      if (meaning.linkTarget !== undefined) {
        // A hard link names its target as it is when the link is made: an earlier entry of the
        // same layer, else what the layers below show.
        const target = own.has(meaning.linkTarget)
          ? own.find(meaning.linkTarget)
          : below.find(meaning.linkTarget);
        if (!target) {
          throw new ImageArchiveError(
            `a hard link points to /${meaning.linkTarget}, which is not in the image below it`,
            { entry: `/${meaning.path}`, member: layer.member },
          );
        }
        if (target.kind === "directory")
          throw refuse(`holds a hard link to the folder /${meaning.linkTarget}`);
      }
      own.put(meaning.path, meaning.kind);
    }
    // Whiteouts and opaque markers apply to the layers below only; then this layer goes on top.
    for (const dir of opaque) below.clearFolder(dir);
    for (const path of deleted) below.delete(path);
    below.overlay(own);
  }
}

interface TreeNode {
  kind: ContentKind;
  children: Map<string, TreeNode> | undefined;
}

/** The paths of an image as layers build it up; folders merge, anything else replaces. */
class ImageTree {
  readonly #root: TreeNode = { kind: "directory", children: new Map() };

  /** The node at `path`, when every folder on the way is a folder. */
  find(path: string): TreeNode | undefined {
    let node: TreeNode | undefined = this.#root;
    for (const part of path.split("/")) {
      node = node.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  }

  has(path: string): boolean {
    let node: TreeNode | undefined = this.#root;
    for (const part of path.split("/")) {
      if (!node.children) return true; // under a non-folder of this tree: this tree decides
      node = node.children.get(part);
      if (!node) return false;
    }
    return true;
  }

  /** The nearest parent of `path` that is not a folder, if any. */
  nonFolderAbove(path: string): { path: string; kind: ContentKind } | undefined {
    const parts = path.split("/");
    let node: TreeNode | undefined = this.#root;
    for (let i = 0; i < parts.length - 1; i++) {
      node = node.children?.get(parts[i] as string);
      if (!node) return undefined;
      if (node.kind !== "directory") return { path: parts.slice(0, i + 1).join("/"), kind: node.kind };
    }
    return undefined;
  }

  /** Sets `path` (parents become folders); a folder over a folder keeps its children. */
  put(path: string, kind: ContentKind): void {
    const parts = path.split("/");
    let parent = this.#root;
    for (let i = 0; i < parts.length - 1; i++) parent = this.#folder(parent, parts[i] as string);
    const name = parts[parts.length - 1] as string;
    const existing = parent.children?.get(name);
    if (kind === "directory" && existing?.kind === "directory") return;
    parent.children?.set(name, { kind, children: kind === "directory" ? new Map() : undefined });
  }

  delete(path: string): void {
    const slash = path.lastIndexOf("/");
    const parent = slash === -1 ? this.#root : this.find(path.slice(0, slash));
    parent?.children?.delete(path.slice(slash + 1));
  }

  clearFolder(dir: string): void {
    const node = dir === "" ? this.#root : this.find(dir);
    node?.children?.clear();
  }

  /** Puts every path of `upper` over this tree. */
  overlay(upper: ImageTree): void {
    const merge = (into: TreeNode, from: TreeNode) => {
      for (const [name, node] of from.children ?? []) {
        const existing = into.children?.get(name);
        if (node.kind === "directory" && existing?.kind === "directory") merge(existing, node);
        else into.children?.set(name, node);
      }
    };
    merge(this.#root, upper.#root);
  }

  #folder(parent: TreeNode, name: string): TreeNode {
    const existing = parent.children?.get(name);
    if (existing?.kind === "directory") return existing;
    const folder: TreeNode = { kind: "directory", children: new Map() };
    parent.children?.set(name, folder);
    return folder;
  }
}
