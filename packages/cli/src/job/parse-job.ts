import { dirname, isAbsolute } from "node:path";
import { type ContainerSpec, collectSpecIssues } from "@contexec/core";
import { readRuntimeChapter, readSlurmChapter } from "./chapters.js";
import { readComposeService, type ServiceContext, type ServiceResult } from "./compose-service.js";
import { didYouMean } from "./did-you-mean.js";
import { isDockSingLayout, readDockSing } from "./docksing.js";
import type { Job, JobRuntime, JobSlurm } from "./job.js";
import { JobFileError, type JobIssue } from "./job-file-error.js";
import { applyOverride, OverrideError, parseOverride } from "./set-overrides.js";
import { join, TreeReader } from "./tree-reader.js";
import { entryOf, parseYamlTree, type SourcePos, type TreeMap } from "./yaml-tree.js";

export interface ParseJobOptions {
  /** The job file's absolute path: named in errors; relative paths in it resolve against its folder. */
  file: string;
  /** The service to run, for a compose file with several. */
  service?: string;
  /** `KEY=VALUE` overrides (`--set`), applied in order before the file is read. */
  set?: readonly string[];
  /** The host environment: values of `- NAME` entries without a value, and HOME for `~`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Reads an env file (absolute path); undefined when missing. Default: every file is missing. */
  readFile?: (path: string) => string | undefined;
}

const COMPOSE_TOP_KEYS = [
  "services",
  "version",
  "name",
  "networks",
  "volumes",
  "configs",
  "secrets",
  "runtime",
  "slurm",
];

/**
 * Reads a job file's text into a {@link Job}: pure (the only outside facts are `options.env` and
 * `options.readFile`). Three layouts are accepted:
 * - a compose service at the top level, plus `runtime:` and `slurm:` chapters;
 * - a compose file with `services:` (one service is run; `runtime:`/`slurm:` at the top level or in it);
 * - a DockSing file (`remotedir`, `slurm`, `container`), unchanged.
 *
 * Throws {@link JobFileError} listing every problem with its file, line, column and key path.
 * The spec is checked by core's own rules too, and their findings are placed the same way.
 */
export function parseJob(text: string, options: ParseJobOptions): Job {
  if (!isAbsolute(options.file))
    throw new TypeError(`parseJob needs an absolute file path, got ${options.file}`);
  const file = options.file;
  const sources = new Map<string, string>([[file, text]]);
  const fileStart: SourcePos = { source: file, line: 1, col: 1 };
  const fail = (issues: JobIssue[]): never => {
    throw new JobFileError(inFileOrder(issues), sources);
  };

  const parsed = parseYamlTree(text, file);
  if (parsed.issues.length > 0)
    fail(parsed.issues.map((i) => ({ pos: i.pos, path: "", message: i.message })));
  const root = parsed.tree;
  if (root?.kind !== "map") {
    return fail([
      {
        pos: root?.pos ?? fileStart,
        path: "",
        message:
          "a job file is a map: a compose service (image:, command:, ...), a compose file (services:), or a DockSing file (container:)",
      },
    ]);
  }

  const layout = entryOf(root, "services") ? "compose" : isDockSingLayout(root) ? "docksing" : "service";
  const serviceName = layout === "compose" ? pickService(root, options.service, fail) : undefined;
  if (layout !== "compose" && options.service !== undefined) {
    fail([
      {
        pos: fileStart,
        path: "",
        message: `this file has no services: section, so there is no service "${options.service}" to pick`,
      },
    ]);
  }

  for (const arg of options.set ?? []) {
    try {
      const { segments, value } = parseOverride(arg);
      const top = segments[0] as string;
      const inService =
        layout === "compose" && !COMPOSE_TOP_KEYS.includes(top) && !top.startsWith("x-")
          ? ["services", serviceName as string]
          : layout === "docksing" && !["remotedir", "slurm", "container", "runtime"].includes(top)
            ? ["container"]
            : [];
      applyOverride(root, [...inService, ...segments], value);
    } catch (err) {
      if (!(err instanceof OverrideError)) throw err;
      fail([{ pos: { source: `--set ${arg}`, line: 0, col: 0 }, path: "", message: err.message }]);
    }
  }

  const reader = new TreeReader();
  const ctx: ServiceContext = {
    reader,
    dir: dirname(file),
    env: options.env ?? {},
    readFile: options.readFile ?? (() => undefined),
    sources,
  };
  let service: ServiceResult | ReturnType<typeof readDockSing>;
  let runtime: JobRuntime | undefined;
  let unsupported: "error" | "ignore" | undefined;
  let slurm: JobSlurm | undefined;
  const readChapters = (map: TreeMap, path: string) => {
    const rt = entryOf(map, "runtime")?.value;
    if (rt) {
      const read = readRuntimeChapter(rt, join(path, "runtime"), reader);
      if (read) {
        runtime = read.runtime;
        unsupported = read.unsupported ?? unsupported;
      }
    }
    const sl = entryOf(map, "slurm")?.value;
    if (sl) slurm = readSlurmChapter(sl, join(path, "slurm"), reader) ?? slurm;
  };

  if (layout === "docksing") {
    const d = readDockSing(root, ctx);
    service = d;
    runtime = d.runtime;
    slurm = d.slurm;
  } else if (layout === "compose") {
    reader.keys(root, "", COMPOSE_TOP_KEYS, {
      what: "compose file keys",
      refused: { include: "include: is not supported; put the service in this file" },
    });
    readChapters(root, "");
    const path = join("services", serviceName as string);
    const node = entryOf(entryOf(root, "services")?.value as TreeMap, serviceName as string)?.value;
    const map = node ? reader.map(node, path) : undefined;
    if (!map) fail(reader.issues);
    readChapters(map as TreeMap, path);
    service = readComposeService(map as TreeMap, path, ctx);
  } else {
    readChapters(root, "");
    service = readComposeService(root, "", ctx);
  }
  if (unsupported) service.spec.unsupported = unsupported;

  {
    // Core's own rules, on everything but the image (checked once it is resolved).
    const probe: ContainerSpec = { ...service.spec, image: `sha256:${"0".repeat(64)}` };
    for (const issue of collectSpecIssues(probe)) {
      const pos = originOf(issue.path, reader.origins) ?? fileStart;
      reader.fail(pos, specPathInFile(issue.path, layout), issue.message);
    }
  }
  if (reader.issues.length > 0) fail(reader.issues);
  const image = service.image;
  if (!image) return fail([{ pos: fileStart, path: "image", message: "image: is required" }]);

  return {
    file,
    layout,
    ...(serviceName !== undefined && { service: serviceName }),
    image,
    spec: { ...service.spec, image: image.kind === "archive" ? image.path : image.ref },
    createHostPaths: [...new Set(service.createHostPaths)],
    ...("stopSignal" in service && service.stopSignal && { stopSignal: service.stopSignal }),
    ...("stopGraceMs" in service &&
      service.stopGraceMs !== undefined && { stopGraceMs: service.stopGraceMs }),
    ...(runtime && { runtime }),
    ...(slurm && { slurm }),
    warnings: reader.warnings,
  };
}

function pickService(root: TreeMap, wanted: string | undefined, fail: (issues: JobIssue[]) => never): string {
  const entry = entryOf(root, "services") as NonNullable<ReturnType<typeof entryOf>>;
  const services = entry.value;
  if (services.kind !== "map" || services.entries.length === 0) {
    return fail([
      { pos: services.pos, path: "services", message: "must be a map of services (name: { image: ... })" },
    ]);
  }
  const names = services.entries.map((e) => e.key);
  if (wanted === undefined) {
    if (names.length === 1) return names[0] as string;
    return fail([
      {
        pos: entry.keyPos,
        path: "services",
        message: `the file has ${names.length} services (${names.join(", ")}); name the one to run: contexec run FILE SERVICE`,
      },
    ]);
  }
  if (names.includes(wanted)) return wanted;
  const guess = didYouMean(wanted, names);
  return fail([
    {
      pos: entry.keyPos,
      path: "services",
      message: `no service "${wanted}"${guess ? `; did you mean "${guess}"?` : ""} (services: ${names.join(", ")})`,
    },
  ]);
}

/** Issues sorted by place: each source's in line order, sources in order of first appearance. */
function inFileOrder(issues: readonly JobIssue[]): JobIssue[] {
  const sourceRank = new Map<string, number>();
  for (const i of issues) if (!sourceRank.has(i.pos.source)) sourceRank.set(i.pos.source, sourceRank.size);
  return [...issues].sort(
    (a, b) =>
      (sourceRank.get(a.pos.source) as number) - (sourceRank.get(b.pos.source) as number) ||
      a.pos.line - b.pos.line ||
      a.pos.col - b.pos.col,
  );
}

/** The place a spec path came from: itself, else its closest recorded parent. */
function originOf(path: string, origins: ReadonlyMap<string, SourcePos>): SourcePos | undefined {
  let p = path;
  for (;;) {
    const pos = origins.get(p);
    if (pos) return pos;
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    if (cut <= 0) return undefined;
    p = p.slice(0, cut);
  }
}

/** A spec path as the file's key, for messages: `env.FOO` -> `environment.FOO`. */
function specPathInFile(path: string, layout: Job["layout"]): string {
  const docksing = layout === "docksing";
  const renamed = path
    .replace(/^env\b/, "environment")
    .replace(/^workdir\b/, "working_dir")
    .replace(/^mounts\b/, "volumes")
    .replace(/^name\b/, "container_name")
    .replace(/^network\b/, "network_mode");
  return docksing ? `container.${renamed.replace(/^command\b/, "commands")}` : renamed;
}
