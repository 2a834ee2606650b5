import { ImageArchiveError, readImageArchive } from "@contexec/core";
import * as tar from "tar-stream";
import { planFlatten } from "./flatten-layers.js";
import { archiveLayerSource } from "./layer-source.js";

/** Files larger than this are not read (passwd and group are a few KB). */
const READ_LIMIT = 1024 * 1024;

export interface ReadImageFilesOptions {
  /** Absolute paths whose presence in the image is asked. */
  exists?: readonly string[];
  /** Absolute paths of regular files to read (as UTF-8). */
  read?: readonly string[];
  signal?: AbortSignal;
}

export interface ImageFiles {
  /** For each asked path: true when the image has it (any kind of entry). */
  exists: Map<string, boolean>;
  /** The files asked for that are in the image, by path. */
  files: Map<string, string>;
}

/**
 * Looks into an image archive's root file system as its layers make it (whiteouts and opaque
 * folders applied, by the flattener's planning pass) without converting anything: which paths
 * exist, and the text of a few small files. What a run is planned from when the image is not
 * converted yet (its working folder, its passwd and group for a user name).
 */
export async function readImageFiles(
  archivePath: string,
  options: ReadImageFilesOptions = {},
): Promise<ImageFiles> {
  const { signal } = options;
  const archive = await readImageArchive(archivePath, signal ? { signal } : {});
  const layers = archive.layers.map((l) => archiveLayerSource(archivePath, l, signal));
  const plan = await planFlatten(layers, { signal });
  const rel = (p: string) => p.replace(/^\/+/, "").replace(/\/+$/, "");

  const present = new Set<string>();
  for (const e of plan.memoryEntries) present.add(e.path);
  for (const e of plan.hardLinks) present.add(e.path);
  for (const copies of plan.dataCopies.values()) for (const c of copies.values()) present.add(c.out.path);
  const exists = new Map<string, boolean>();
  for (const p of options.exists ?? []) exists.set(p, rel(p) === "" || present.has(rel(p)));

  const files = new Map<string, string>();
  const wanted = new Map((options.read ?? []).map((p) => [rel(p), p] as const));
  for (const e of plan.memoryEntries) {
    const asked = wanted.get(e.path);
    if (asked !== undefined && e.kind === "file") files.set(asked, "");
  }
  // A hard link reads as the file it names.
  const linkTo = new Map(plan.hardLinks.map((h) => [h.path, h.linkname] as const));
  const byLayer = new Map<number, Map<number, string>>();
  for (const [index, copies] of plan.dataCopies) {
    for (const [ordinal, copy] of copies) {
      for (const [path, asked] of wanted) {
        if ((copy.out.path === path || linkTo.get(path) === copy.out.path) && copy.size <= READ_LIMIT) {
          const m = byLayer.get(index) ?? new Map<number, string>();
          byLayer.set(index, m);
          m.set(ordinal, asked);
        }
      }
    }
  }
  for (const [index, ordinals] of byLayer) {
    const layer = layers[index];
    if (!layer) continue;
    const opened = layer.open();
    const extract = tar.extract();
    opened.stream.on("error", (err) => extract.destroy(err));
    opened.stream.pipe(extract as unknown as NodeJS.WritableStream);
    let ordinal = 0;
    let left = ordinals.size;
    try {
      for await (const entry of extract) {
        const asked = ordinals.get(ordinal++);
        if (asked === undefined) {
          entry.resume();
          continue;
        }
        const chunks: Buffer[] = [];
        for await (const chunk of entry) chunks.push(chunk as Buffer);
        files.set(asked, Buffer.concat(chunks).toString("utf8"));
        if (--left === 0) break;
      }
    } catch (err) {
      throw new ImageArchiveError(`cannot read ${layer.name}: ${(err as Error).message}`, { cause: err });
    } finally {
      extract.destroy();
      opened.destroy();
    }
  }
  return { exists, files };
}
