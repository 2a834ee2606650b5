import { ImageArchiveError, InvalidConfigError } from "../errors.js";
import type { TarEntryKind, TarHeader } from "./tar-headers.js";

/*
 * The checks every entry of every layer passes, on every backend, in one place: the Docker
 * backend runs them (checkImageLayers) before the daemon sees a byte, the Apptainer backend before
 * converting, and the SIF flattener uses the same functions while planning. What is refused:
 * - a name that climbs out of the root (`../x`, `/../x`, `a/../../x`) or holds a NUL byte;
 *   absolute names that stay inside are read relative to the root, as Docker reads them;
 * - a hard link whose target leaves the root, holds a NUL, is the root, a folder, or is missing
 *   (neither an earlier entry of its layer nor visible in the layers below);
 * - a symlink with an empty or NUL-holding target (symlinks are otherwise kept as they are:
 *   they resolve inside the container, so one pointing "outside" is harmless, and Docker keeps them);
 * - an entry inside something the same layer made a non-folder; the root replaced by a non-folder;
 * - a malformed whiteout (`.wh.`, `.wh..`); entry types other than files, folders, links,
 *   symlinks, fifos and devices (sparse files, volume labels, ...);
 * - more than the limits allow ({@link ArchiveLimits}).
 * Measured against Docker Engine 20.10: it refuses the link cases and entries inside a file of the
 * same layer with its own errors, and quietly accepts `../` names (its chroot keeps them inside);
 * both backends now refuse all of these alike, with ImageArchiveError.
 */

/** Bounds on what an image archive may hold; every one has a generous default. */
export interface ArchiveLimits {
  /**
   * Bytes of all layers together once uncompressed (tar headers included). A decompression bomb
   * stops here. Default 64 GiB.
   */
  maxLayerBytes: number;
  /** Entries of all layers together. Default 2 000 000. */
  maxEntries: number;
  /** Size of one metadata member: manifest.json, an image config, index.json, an OCI manifest. Default 16 MiB. */
  maxMetadataBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxLayerBytes: 64 * 1024 ** 3,
  maxEntries: 2_000_000,
  maxMetadataBytes: 16 * 1024 ** 2,
});

/** The limits with defaults filled in; throws InvalidConfigError for a value that is not a positive integer. */
export function archiveLimits(given: Partial<ArchiveLimits> = {}): ArchiveLimits {
  const limits = { ...DEFAULT_ARCHIVE_LIMITS };
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_ARCHIVE_LIMITS)) {
      throw new InvalidConfigError(
        `unknown archive limit "${key}"; known: ${Object.keys(DEFAULT_ARCHIVE_LIMITS).join(", ")}`,
      );
    }
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidConfigError(`archive limit ${key} must be a positive integer, not ${String(value)}`);
    }
    limits[key as keyof ArchiveLimits] = value;
  }
  return limits;
}

/** Counts entries and uncompressed bytes across the layers of one image against the limits. */
export class LayerBudget {
  readonly limits: ArchiveLimits;
  #bytes = 0;
  #entries = 0;

  constructor(limits: Partial<ArchiveLimits> = {}) {
    this.limits = archiveLimits(limits);
  }

  get bytes(): number {
    return this.#bytes;
  }

  get entries(): number {
    return this.#entries;
  }

  /** Takes `n` uncompressed bytes of `member`, before they are read; throws past maxLayerBytes. */
  takeBytes(n: number, member: string): void {
    this.#bytes += n;
    if (this.#bytes > this.limits.maxLayerBytes) {
      throw new ImageArchiveError(
        `the image's layers hold more than ${describeBytes(this.limits.maxLayerBytes)} once uncompressed (the maxLayerBytes limit; a decompression bomb, or raise the limit)`,
        { member, limit: "maxLayerBytes" },
      );
    }
  }

  /** Takes one entry of `member`; throws past maxEntries. */
  takeEntry(member: string, entry: string): void {
    if (++this.#entries > this.limits.maxEntries) {
      throw new ImageArchiveError(
        `the image's layers hold more than ${this.limits.maxEntries} entries (the maxEntries limit; raise it for such an image)`,
        { member, entry: printable(entry), limit: "maxEntries" },
      );
    }
  }
}

function describeBytes(n: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  }
  return `${n} bytes`;
}

/** What one layer entry means for the image, once checked. */
export type LayerEntryMeaning =
  /** The root folder itself (its metadata is fixed: 0755, root-owned). */
  | { type: "root" }
  /** `.wh.NAME`: `path` and everything under it is deleted from the layers below. */
  | { type: "whiteout"; path: string }
  /** `.wh..wh..opq`: what the layers below hold in `dir` ("" for the root) is hidden. */
  | { type: "opaque"; dir: string }
  /** Other `.wh..wh.` names: aufs bookkeeping, not content. */
  | { type: "bookkeeping" }
  /** Content at `path`; for a hard link, `linkTarget` is the path it names. */
  | { type: "content"; path: string; kind: ContentKind; linkTarget?: string };

export type ContentKind = Exclude<TarEntryKind, "other">;

/**
 * Checks one entry of a layer on its own and says what it means. `what` names the layer in
 * messages ("layer <member>"), `member` is the archive member holding it. Throws
 * {@link ImageArchiveError} for a hostile or unsupported entry.
 */
export function classifyLayerEntry(header: TarHeader, what: string, member?: string): LayerEntryMeaning {
  const path = entryPath(header.name, what, member);
  const refuse = (message: string) =>
    new ImageArchiveError(`${what} ${message}`, { entry: printable(header.name), ...(member && { member }) });
  if (path === "") {
    if (header.kind !== "directory") throw refuse("replaces the image's root folder with a non-folder");
    return { type: "root" };
  }
  const slash = path.lastIndexOf("/");
  const base = path.slice(slash + 1);
  const dir = slash === -1 ? "" : path.slice(0, slash);
  if (base.startsWith(".wh.")) {
    if (base === ".wh..wh..opq") return { type: "opaque", dir };
    if (base.startsWith(".wh..wh.")) return { type: "bookkeeping" };
    const name = base.slice(4);
    if (name === "" || name === "." || name === "..") throw refuse("holds a malformed whiteout");
    return { type: "whiteout", path: dir === "" ? name : `${dir}/${name}` };
  }
  switch (header.kind) {
    case "other":
      throw refuse(
        `holds an entry of unsupported tar type '${printable(header.typeflag)}' (only files, folders, links, symlinks, fifos and devices are allowed)`,
      );
    case "symlink":
      if (header.linkname === "" || header.linkname.includes("\0")) {
        throw refuse("holds a symlink with an empty or NUL-holding target");
      }
      return { type: "content", path, kind: "symlink" };
    case "link": {
      if (header.linkname.includes("\0")) throw refuse("holds a hard link whose target contains a NUL byte");
      let target: string;
      try {
        target = entryPath(header.linkname, what);
      } catch {
        throw refuse(`holds a hard link pointing outside the image (to "${printable(header.linkname)}")`);
      }
      if (target === "") throw refuse("holds a hard link to the root folder");
      return { type: "content", path, kind: "link", linkTarget: target };
    }
    default:
      return { type: "content", path, kind: header.kind };
  }
}

const CLEAN_NAME = /^(?!\.{1,2}(?:\/|$))[^/\0]+(?:\/(?!\.{1,2}(?:\/|$))[^/\0]+)*$/;

/**
 * An entry's path inside the image: relative, without `.` segments and with `..` resolved.
 * Leading slashes are dropped (absolute names are relative to the image root, as Docker reads
 * them). A name that climbs out of the root, or holds a NUL, is refused.
 */
export function entryPath(name: string, what: string, member?: string): string {
  // Most names are already clean ("usr/bin/env"): no leading or doubled slash, no . or .. part.
  if (CLEAN_NAME.test(name)) return name;
  if (name.includes("\0")) {
    throw new ImageArchiveError(`${what} holds an entry whose name contains a NUL byte`, {
      entry: printable(name),
      ...(member && { member }),
    });
  }
  const parts: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) {
        throw new ImageArchiveError(`${what} holds an entry whose path leaves the image root`, {
          entry: printable(name),
          ...(member && { member }),
        });
      }
      parts.pop();
    } else parts.push(part);
  }
  return parts.join("/");
}

/** Control characters shown as \xNN, so a message names a hostile entry readably. */
export function printable(s: string): string {
  let out = "";
  for (const c of s) {
    const code = c.charCodeAt(0);
    out += code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : c;
  }
  return out;
}
