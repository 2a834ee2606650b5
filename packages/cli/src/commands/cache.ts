import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { defaultCacheDir, SifCache, type SifCacheEntry } from "@contexec/singularity";
import { type Command, type CommandContext, parseCommandArgs } from "../command.js";
import { UsageError } from "../exit-codes.js";
import { parseDuration } from "../job/units.js";
import { formatBytes } from "../terminal/progress-line.js";

/** A file in the cache folder, as prune sees it. */
export interface CacheFile {
  name: string;
  mtimeMs: number;
}

export interface PruneChoice {
  /** Images to remove (through the cache, under its lock). */
  images: SifCacheEntry[];
  /** Files no image owns: conversions of processes that died, SIFs whose metadata is gone. */
  leftovers: string[];
}

// A SIF renamed into place a moment before its metadata is written is not an orphan yet.
const ORPHAN_AGE_MS = 10 * 60_000;

/**
 * What `cache prune` removes (pure): always the leftovers (temporary files of processes no longer
 * alive, SIFs without metadata for 10 minutes); with `all` every image, with `olderThanMs` the
 * images not loaded for that long.
 */
export function choosePrunable(
  entries: readonly SifCacheEntry[],
  files: readonly CacheFile[],
  options: { all?: boolean; olderThanMs?: number; now: number; isAlive: (pid: number) => boolean },
): PruneChoice {
  const images = entries.filter(
    (e) =>
      options.all ||
      (options.olderThanMs !== undefined && options.now - Date.parse(e.loadedAt) > options.olderThanMs),
  );
  const known = new Set(entries.map((e) => e.id.slice(7)));
  const leftovers = files
    .filter((f) => {
      const tmp = /^\.([0-9a-f]{64})\.(sif|json)\.tmp-(\d+)-[0-9a-f]+$/.exec(f.name);
      if (tmp) return !options.isAlive(Number(tmp[3]));
      const sif = /^([0-9a-f]{64})\.sif$/.exec(f.name);
      return sif !== null && !known.has(sif[1] as string) && options.now - f.mtimeMs > ORPHAN_AGE_MS;
    })
    .map((f) => f.name);
  return { images, leftovers };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

const HELP = `Usage: contexec cache ls [--json] | prune [--all | --older-than DURATION] [--dry-run]

The Apptainer backend's SIF cache: one SIF per image, shared by every process on the machine.

  ls                     every image: id, tags, size, converter, when made and last loaded
  prune                  removes what no image owns (conversions of processes that died)
    --all                and every image
    --older-than 30d     and the images not loaded for that long (s, m, h, d)
    --dry-run            only says what it would remove

Options:
  --cache-dir DIR        the cache (default: $CONTEXEC_SIF_CACHE, else $XDG_CACHE_HOME/contexec/sif,
                         else ~/.cache/contexec/sif)
  --json                 JSON output
  --help, -h             this help`;

export const cacheCommand: Command = {
  name: "cache",
  help: HELP,
  async run(ctx: CommandContext): Promise<number> {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      "cache-dir": { type: "string" },
      json: { type: "boolean" },
      all: { type: "boolean" },
      "older-than": { type: "string" },
      "dry-run": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      ctx.stdout.write(`${HELP}\n`);
      return 0;
    }
    const [action, ...extra] = positionals;
    if (action !== "ls" && action !== "prune")
      throw new UsageError("say contexec cache ls or contexec cache prune");
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
    const cache = new SifCache({ dir: values["cache-dir"] ?? defaultCacheDir(ctx.env) });
    const entries = (await cache.list()).sort((a, b) => b.loadedAt.localeCompare(a.loadedAt));

    if (action === "ls") {
      if (values.json) {
        ctx.stdout.write(`${JSON.stringify({ dir: cache.dir, images: entries }, null, 2)}\n`);
        return 0;
      }
      ctx.stdout.write(`${cache.dir}: ${entries.length} image${entries.length === 1 ? "" : "s"}\n`);
      for (const e of entries) {
        ctx.stdout.write(
          `  ${e.id.slice(7, 19)}  ${formatBytes(e.sifBytes).padStart(9)}  ${e.converter.padEnd(15)}  loaded ${e.loadedAt}  ${e.repoTags.join(", ") || "<no tag>"}\n`,
        );
      }
      return 0;
    }

    let olderThanMs: number | undefined;
    if (values["older-than"] !== undefined) {
      const text = values["older-than"];
      const days = /^(\d+(?:\.\d+)?)d$/.exec(text);
      olderThanMs = days ? Number(days[1]) * 86_400_000 : parseDuration(text);
      if (olderThanMs === undefined)
        throw new UsageError(`--older-than: "${text}" is not a duration (30d, 12h, 90m)`);
    }
    const names = await readdir(cache.dir).catch(() => [] as string[]);
    const files = await Promise.all(
      names.map(async (name) => ({
        name,
        mtimeMs: (await stat(join(cache.dir, name)).catch(() => undefined))?.mtimeMs ?? 0,
      })),
    );
    const choice = choosePrunable(entries, files, {
      ...(values.all && { all: true }),
      ...(olderThanMs !== undefined && { olderThanMs }),
      now: Date.now(),
      isAlive,
    });
    const verb = values["dry-run"] ? "would remove" : "removed";
    let freed = 0;
    for (const e of choice.images) {
      if (!values["dry-run"]) await cache.remove(e.id);
      freed += e.sifBytes;
      if (!values.json) ctx.stdout.write(`${verb} ${e.id} ${e.repoTags.join(", ")}\n`);
    }
    for (const name of choice.leftovers) {
      const path = join(cache.dir, name);
      freed += (await stat(path).catch(() => undefined))?.size ?? 0;
      if (!values["dry-run"]) await rm(path, { force: true });
      if (!values.json) ctx.stdout.write(`${verb} leftover ${name}\n`);
    }
    if (values.json) {
      ctx.stdout.write(
        `${JSON.stringify({ dryRun: values["dry-run"] === true, images: choice.images.map((e) => e.id), leftovers: choice.leftovers, bytes: freed })}\n`,
      );
    } else {
      ctx.stdout.write(
        `${verb} ${choice.images.length} image(s), ${choice.leftovers.length} leftover(s): ${formatBytes(freed)}\n`,
      );
    }
    return 0;
  },
};
