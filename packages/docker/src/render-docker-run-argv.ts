import { OWNER_LABELS } from "@contexec/core";
import type { DockerCreateBody } from "./render-create-options.js";

export interface DockerRunArgvOptions {
  /** argv[0]; default "docker". */
  binary?: string;
  /** Labels left out (the executor's ownership label: a pasted script's container is nobody's leftover). */
  omitLabels?: readonly string[];
}

/**
 * The `docker run` command line equivalent to a create body: what a person pastes to run the
 * same container without contexec. Pure. `--rm` stands in for the executor's own removal; the
 * resolved argv goes as `--entrypoint ARGV0 IMAGE ARGV1...`, which (as the body's Entrypoint
 * with an empty Cmd) leaves nothing to Docker's ENTRYPOINT/CMD merge.
 *
 * Values that hold commas go through `--mount`/`--gpus` as CSV fields, quoted as the Docker CLI's
 * CSV reader expects ("a,b" with "" for a quote).
 */
export function renderDockerRunArgv(body: DockerCreateBody, options: DockerRunArgvOptions = {}): string[] {
  const argv = [options.binary ?? "docker", "run", "--rm"];
  const hc = body.HostConfig;
  if (body.name) argv.push("--name", body.name);
  if (!body.AttachStdout && !body.AttachStderr) argv.push("--detach");
  if (body.OpenStdin) argv.push("--interactive");
  if (hc.Init) argv.push("--init");
  const omit = new Set(options.omitLabels ?? []);
  for (const [k, v] of Object.entries(body.Labels).sort(([a], [b]) => a.localeCompare(b))) {
    if (!omit.has(k)) argv.push("--label", `${k}=${v}`);
  }
  for (const e of body.Env) argv.push("--env", e);
  argv.push("--workdir", body.WorkingDir);
  if (body.User !== undefined) argv.push("--user", body.User);
  if (hc.NetworkMode) argv.push("--network", hc.NetworkMode);
  if (hc.Memory !== undefined) argv.push("--memory", `${hc.Memory}b`);
  if (hc.MemorySwap !== undefined) argv.push("--memory-swap", `${hc.MemorySwap}b`);
  if (hc.NanoCpus !== undefined) argv.push("--cpus", String(hc.NanoCpus / 1e9));
  for (const m of hc.Mounts) {
    const fields =
      m.Type === "bind"
        ? ["type=bind", `source=${m.Source}`, `target=${m.Target}`, ...(m.ReadOnly ? ["readonly"] : [])]
        : [
            "type=tmpfs",
            `target=${m.Target}`,
            ...(m.TmpfsOptions ? [`tmpfs-size=${m.TmpfsOptions.SizeBytes}`] : []),
          ];
    argv.push("--mount", csvLine(fields));
  }
  for (const r of hc.DeviceRequests ?? []) {
    const fields = [
      r.DeviceIDs?.length ? `device=${r.DeviceIDs.join(",")}` : r.Count === -1 ? "all" : `count=${r.Count}`,
      `driver=${r.Driver}`,
      ...r.Capabilities.map((caps) => `capabilities=${caps.join(",")}`),
    ];
    argv.push("--gpus", csvLine(fields));
  }
  for (const d of hc.Devices ?? [])
    argv.push("--device", `${d.PathOnHost}:${d.PathInContainer}:${d.CgroupPermissions}`);
  for (const g of hc.GroupAdd ?? []) argv.push("--group-add", g);
  for (const [port, bindings] of Object.entries(hc.PortBindings ?? {})) {
    for (const b of bindings) argv.push("--publish", `${b.HostIp}:${b.HostPort}:${port}`);
  }
  const [program, ...args] = body.Entrypoint;
  argv.push("--entrypoint", program ?? "", body.Image, ...args);
  return argv;
}

/** One CSV record as Go's encoding/csv reads it: fields with `,`, `"` or a newline are quoted. */
export function csvLine(fields: readonly string[]): string {
  return fields
    .map((f) => (/[",\r\n]/.test(f) || /^\s|\s$/.test(f) ? `"${f.replace(/"/g, '""')}"` : f))
    .join(",");
}

/**
 * A `docker run` argv (as {@link renderDockerRunArgv} writes it) whose owner labels are read from
 * `labelFile` (`--label-file`), written when the command runs, instead of naming the planning
 * process: a SLURM job script's container is owned by the script on its node, so that a sweep
 * there removes it once the script is gone (SIGKILLed, its node's docker CLI with it). Pure.
 */
export function ownerLabelsFromFile(argv: readonly string[], labelFile: string): string[] {
  if (argv[1] !== "run") throw new Error(`not a docker run argv: ${argv.join(" ")}`);
  const owner = Object.values(OWNER_LABELS).map((k) => `${k}=`);
  const out = [argv[0] as string, "run", "--label-file", labelFile];
  let i = 2;
  for (; i < argv.length; i++) {
    const word = argv[i] as string;
    // The options end at the image: what follows --entrypoint's value is the image and its args.
    if (word === "--entrypoint") break;
    const next = argv[i + 1];
    if (word === "--label" && next !== undefined && owner.some((k) => next.startsWith(k))) {
      i++;
      continue;
    }
    out.push(word);
  }
  return [...out, ...argv.slice(i)];
}
