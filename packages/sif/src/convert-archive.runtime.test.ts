import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { AbortedError, ImageArchiveError, RuntimeError, readImageArchive } from "@contexec/core";
import { dockerArchiveOf, ociArchiveOf, tarOf } from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { convertArchiveToSif } from "./convert-archive.js";
import { inspectSif, SIF_DATA_TYPES, SIF_FS_TYPES, SIF_PARTITION_TYPES } from "./sif-format.js";
import { compareRootfs, listSifRootfs, type RootfsEntry } from "./testing/rootfs-listing.js";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

function which(command: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const apptainer = which("apptainer");
const sqfstar = which("sqfstar");
const unsquashfs = which("unsquashfs");
if (!apptainer)
  console.warn("[sif runtime tests] apptainer not found: Apptainer runs and equivalence are skipped");
if (!sqfstar || !unsquashfs)
  console.warn("[sif runtime tests] squashfs-tools not found: conversions are skipped");

let fixtures = "";
let work = "";
beforeAll(async () => {
  // The runtime project's global setup provides the folder; else the env, else build them here.
  fixtures =
    process.env.CONTEXEC_FIXTURES ??
    (inject("fixturesDir" as never) as string | undefined) ??
    execFileSync(join(repoRoot, "scripts/build-fixtures.sh"), {
      cwd: repoRoot,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    })
      .trim()
      .split("\n")
      .pop() ??
    "";
  work = await mkdtemp(join(tmpdir(), "sif-runtime-"));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** `apptainer <args>` with the user namespace this sandbox needs; stdout, trimmed. */
async function apptainerOut(...args: string[]): Promise<string> {
  const { stdout } = await run("apptainer", ["-s", ...args], { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}
const exec = (sif: string, script: string) =>
  apptainerOut("exec", "--userns", "--containall", "--cleanenv", sif, "/bin/sh", "-c", script);

const converted = new Map<string, Promise<string>>();
/** The fixture converted natively once (gzip), shared by the tests below. */
function nativeSif(fixture: string): Promise<string> {
  let p = converted.get(fixture);
  if (!p) {
    p = (async () => {
      const out = join(work, `${fixture}.native.sif`);
      await convertArchiveToSif(join(fixtures, `${fixture}.tar`), out);
      return out;
    })();
    converted.set(fixture, p);
  }
  return p;
}

/** The fixture built by `apptainer build` (its path linked to a plain name: ':' is refused). */
async function apptainerSif(fixture: string): Promise<string> {
  const link = join(work, `${fixture}-input.tar`);
  if (!existsSync(link)) await symlink(join(fixtures, `${fixture}.tar`), link);
  const out = join(work, `${fixture}.apptainer.sif`);
  await run("apptainer", ["-s", "build", "--force", out, `docker-archive://${link}`], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return out;
}

/**
 * Files the converter writes differently from `apptainer build` on purpose; the equivalence check
 * compares only their presence, type, mode and owner:
 * - /.singularity.d/** scripts and labels: same names, modes and behaviour, own text; labels
 *   differ by the build date and Apptainer's version label;
 * - /.singularity.d/Singularity: the definition file names the archive it was made from.
 */
const METADATA_CONTENT = (path: string) => path.startsWith("/.singularity.d/");
/** Entries of Apptainer's build that the converter does not write: its version label only. */
const NOT_WRITTEN = new Set<string>();

const skipRuns = !apptainer || !sqfstar || !unsquashfs;

describe.each(["busybox", "layered"])("the %s fixture", (fixture) => {
  it.skipIf(!sqfstar)("converts to a SIF with the layout apptainer build writes", async () => {
    const sif = await nativeSif(fixture);
    const info = await inspectSif(sif);
    expect(info.descriptors.map((d) => [d.dataType, d.name])).toEqual([
      [SIF_DATA_TYPES.deffile, ""],
      [SIF_DATA_TYPES.genericJson, "inspect-metadata.json"],
      [SIF_DATA_TYPES.genericJson, "oci-config.json"],
      [SIF_DATA_TYPES.partition, ""],
    ]);
    expect(info.primaryPartition).toMatchObject({
      fsType: SIF_FS_TYPES.squashfs,
      partType: SIF_PARTITION_TYPES.primarySystem,
      arch: "amd64",
    });
    expect((info.primaryPartition?.offset ?? 1) % 4096).toBe(0);
    expect(info.header.archName).toBe("amd64");
  });

  it.skipIf(skipRuns)("holds the same root file system as apptainer build makes", async () => {
    const [mine, theirs] = await Promise.all([nativeSif(fixture), apptainerSif(fixture)]);
    const [a, b] = await Promise.all([listSifRootfs(theirs), listSifRootfs(mine)]);
    const diffs = compareRootfs(a, b, { ignore: (p) => NOT_WRITTEN.has(p), ignoreContent: METADATA_CONTENT });
    expect(diffs).toEqual([]);
    expect(a.size).toBeGreaterThan(20);
  });

  it.skipIf(skipRuns)("is described by apptainer sif list and apptainer inspect", async () => {
    const sif = await nativeSif(fixture);
    const list = await apptainerOut("sif", "list", sif);
    expect(list).toMatch(/Def\.FILE/);
    expect(list).toMatch(/FS \(Squashfs\/\*System\/amd64\)/);
    const labels = await apptainerOut("inspect", sif);
    expect(labels).toMatch(/org\.label-schema\.usage\.singularity\.deffile\.bootstrap: docker-archive/);
    expect(await apptainerOut("inspect", "--deffile", sif)).toMatch(/^bootstrap: docker-archive\nfrom: /);
    expect(await apptainerOut("inspect", "--runscript", sif)).toMatch(/^#!\/bin\/sh/);
  });
});

describe("an image with no mount points of its own", () => {
  it.skipIf(skipRuns)(
    "gets the ones apptainer build adds (/dev, /home, /proc, /root, /sys, /tmp, /var/tmp)",
    async () => {
      const archive = join(work, "bare.tar");
      const layer = await tarOf([
        { name: "etc", type: "directory" },
        { name: "etc/x", content: "x\n" },
      ]);
      await writeFile(archive, await dockerArchiveOf({ layers: [layer] }));
      const mine = join(work, "bare.native.sif");
      const theirs = join(work, "bare.apptainer.sif");
      await convertArchiveToSif(archive, mine);
      await run("apptainer", ["-s", "build", "--force", theirs, `docker-archive://${archive}`]);
      const [a, b] = await Promise.all([listSifRootfs(theirs), listSifRootfs(mine)]);
      expect(compareRootfs(a, b, { ignoreContent: METADATA_CONTENT })).toEqual([]);
      expect(b.get("/root")).toMatchObject({ type: "directory", mode: 0o755 });
    },
  );
});

describe("running converted images under Apptainer", () => {
  it.skipIf(skipRuns)("exec sees the layered image's files, whiteouts applied, and its ENV", async () => {
    const sif = await nativeSif("layered");
    const out = await exec(
      sif,
      [
        'echo "$GREETING|$FIXTURE"',
        "cat /data/keep/file.txt /data/keep/hardlink.txt /data/keep/link.txt /data/replaced/new.txt",
        "echo $(ls /data) / $(ls /data/replaced)",
        "stat -c '%i' /data/keep/file.txt /data/keep/hardlink.txt | uniq | wc -l",
        "stat -c '%a' /data/keep/suid.sh",
      ].join("; "),
    );
    expect(out.split("\n")).toEqual([
      "hello world|layered",
      "hello",
      "hello",
      "hello",
      "new",
      "keep replaced / new.txt",
      "1",
      "4755",
    ]);
  });

  it.skipIf(skipRuns)("run follows ENTRYPOINT and CMD; arguments replace CMD", async () => {
    const sif = await nativeSif("layered");
    expect(await apptainerOut("run", "--userns", "--containall", sif)).toBe("entry default-cmd");
    expect(await apptainerOut("run", "--userns", "--containall", sif, "a", "b c")).toBe("entry a b c");
    expect(await apptainerOut("run", "--userns", "--containall", "--no-eval", sif, "$HOME")).toBe(
      "entry $HOME",
    );
  });

  it.skipIf(skipRuns)("exit codes pass through", async () => {
    const sif = await nativeSif("busybox");
    const err = await run("apptainer", [
      "-s",
      "exec",
      "--userns",
      "--containall",
      sif,
      "/bin/sh",
      "-c",
      "exit 7",
    ]).catch((e: { code?: number }) => e);
    expect((err as { code?: number }).code).toBe(7);
  });

  it.skipIf(skipRuns)("runs as an instance", async () => {
    const sif = await nativeSif("busybox");
    const name = `sif-test-${process.pid}`;
    await apptainerOut("instance", "start", "--userns", "--containall", sif, name);
    try {
      expect(await apptainerOut("exec", `instance://${name}`, "/bin/sh", "-c", "echo in-instance")).toBe(
        "in-instance",
      );
      expect(await apptainerOut("instance", "list")).toContain(name);
    } finally {
      await apptainerOut("instance", "stop", name).catch(() => "");
    }
  });

  it.each(["zstd", "lz4", "none"] as const)(
    "%s compression gives a SIF Apptainer runs",
    async (compression) => {
      if (skipRuns) return;
      const out = join(work, `busybox-${compression}.sif`);
      await convertArchiveToSif(join(fixtures, "busybox.tar"), out, { compression });
      expect(await exec(out, "echo ok; cat /etc/passwd | head -1")).toBe("ok\nroot:x:0:0:root:/root:/bin/sh");
      const { stdout } = await run("unsquashfs", [
        "-s",
        "-o",
        String((await inspectSif(out)).primaryPartition?.offset),
        out,
      ]);
      expect(stdout).toMatch(
        compression === "none" ? /Data is uncompressed/ : new RegExp(`Compression ${compression}`),
      );
    },
  );
});

describe("other inputs", () => {
  /** Reads a docker-archive fixture's layers back out to build other archives from them. */
  async function fixtureLayers(
    fixture: string,
  ): Promise<{ layers: Buffer[]; config: Record<string, unknown> }> {
    const path = join(fixtures, `${fixture}.tar`);
    const archive = await readImageArchive(path);
    const data = await readFile(path);
    const layers = archive.layers.map((l) => data.subarray(l.dataOffset, l.dataOffset + l.size));
    return { layers, config: JSON.parse(archive.configJson.toString("utf8")) as Record<string, unknown> };
  }

  it.skipIf(skipRuns)(
    "an OCI layout archive with gzip layers converts to the same root file system",
    async () => {
      const { layers, config } = await fixtureLayers("layered");
      const inner = config.config as {
        Env: string[];
        Entrypoint: string[];
        Cmd: string[];
        WorkingDir: string;
      };
      const oci = join(work, "layered-oci.tar");
      await writeFile(
        oci,
        await ociArchiveOf({
          layers,
          env: inner.Env,
          entrypoint: inner.Entrypoint,
          cmd: inner.Cmd,
          workingDir: inner.WorkingDir,
        }),
      );
      const out = join(work, "layered-oci.sif");
      const result = await convertArchiveToSif(oci, out);
      expect(result.archive.format).toBe("oci-layout");
      expect(result.archive.layers.every((l) => l.compression === "gzip")).toBe(true);
      const [a, b] = await Promise.all([listSifRootfs(await nativeSif("layered")), listSifRootfs(out)]);
      expect(compareRootfs(a, b, { ignoreContent: METADATA_CONTENT })).toEqual([]);
      expect(await apptainerOut("run", "--userns", "--containall", out)).toBe("entry default-cmd");
    },
  );

  it.skipIf(!sqfstar || !unsquashfs || !which("zstd"))(
    "zstd layers are read with the zstd command on Node 20",
    async () => {
      const { layers } = await fixtureLayers("layered");
      const oci = join(work, "layered-zstd.tar");
      await writeFile(
        oci,
        await ociArchiveOf(
          { layers, entrypoint: ["/bin/echo", "entry"], cmd: ["default-cmd"] },
          {
            mediaType: "application/vnd.oci.image.layer.v1.tar+zstd",
            apply: (l) => execFileSync("zstd", ["-q", "-c"], { input: l, maxBuffer: 256 * 1024 * 1024 }),
          },
        ),
      );
      const out = join(work, "layered-zstd.sif");
      const result = await convertArchiveToSif(oci, out, { compression: "lz4" });
      expect(result.archive.layers.every((l) => l.compression === "zstd")).toBe(true);
      const [a, b] = await Promise.all([listSifRootfs(await nativeSif("layered")), listSifRootfs(out)]);
      expect(compareRootfs(a, b, { ignoreContent: METADATA_CONTENT })).toEqual([]);
      // Without digests to check, a layer is left as soon as its last planned file is copied.
      const unverified = join(work, "layered-zstd-unverified.sif");
      await convertArchiveToSif(oci, unverified, { compression: "lz4", verifyDigests: false });
      expect(compareRootfs(a, await listSifRootfs(unverified), { ignoreContent: METADATA_CONTENT })).toEqual(
        [],
      );
    },
  );

  it.skipIf(!sqfstar || !unsquashfs)("a stream is spooled and converted like the file", async () => {
    const out = join(work, "busybox-stream.sif");
    const spoolDir = await mkdtemp(join(work, "spool-"));
    const { createReadStream } = await import("node:fs");
    const result = await convertArchiveToSif(createReadStream(join(fixtures, "busybox.tar")), out, {
      tmpDir: spoolDir,
    });
    expect(result.archive.repoTags[0]).toMatch(/busybox/);
    const [a, b] = await Promise.all([listSifRootfs(await nativeSif("busybox")), listSifRootfs(out)]);
    expect(compareRootfs(a, b, { ignoreContent: METADATA_CONTENT })).toEqual([]);
    // The spooled copy is gone.
    expect(await (await import("node:fs/promises")).readdir(spoolDir)).toEqual([]);
  });

  it.skipIf(!sqfstar || !unsquashfs)("ids beyond 2^18 and modes 0000 reach the squashfs", async () => {
    const layer = await tarOf([
      { name: "bin/", type: "directory" },
      { name: "bin/x", content: "x", uid: 1_000_000, gid: 1_000_001 },
      { name: "etc/", type: "directory" },
      { name: "etc/shadow", content: "s", mode: 0 },
    ]);
    const archive = join(work, "ids.tar");
    await writeFile(archive, await dockerArchiveOf({ layers: [layer] }));
    const out = join(work, "ids.sif");
    await convertArchiveToSif(archive, out, { compression: "lz4" });
    const listing = await listSifRootfs(out);
    expect(listing.get("/bin/x")).toMatchObject({ uid: 1_000_000, gid: 1_000_001 });
    expect(listing.get("/etc/shadow")?.mode).toBe(0);
    expect(listing.get("/")).toMatchObject({ mode: 0o755, uid: 0, gid: 0 } satisfies Partial<RootfsEntry>);
  });
});

describe("failures leave no output", () => {
  it.skipIf(!sqfstar)("an abort stops sqfstar and removes the partial SIF", async () => {
    const big = await tarOf(
      Array.from({ length: 40 }, (_, i) => ({ name: `f${i}`, content: Buffer.alloc(2 * 1024 * 1024, i) })),
    );
    const archive = join(work, "big.tar");
    await writeFile(archive, await dockerArchiveOf({ layers: [big] }));
    const out = join(work, "aborted.sif");
    const controller = new AbortController();
    const converting = convertArchiveToSif(archive, out, {
      signal: controller.signal,
      onProgress: (p) => {
        if (p.bytesRead > 10 * 1024 * 1024) controller.abort(new Error("enough"));
      },
    });
    await expect(converting).rejects.toBeInstanceOf(AbortedError);
    expect(existsSync(out)).toBe(false);
    const { stdout } = await run("sh", ["-c", `pgrep -f '[s]qfstar.*${out}' || true`]);
    expect(stdout.trim()).toBe("");
  });

  it.skipIf(!sqfstar)("a layer that does not match its diff_id fails and leaves nothing", async () => {
    const layer = await tarOf([{ name: "f", content: "real content" }]);
    const data = await dockerArchiveOf({ layers: [layer] });
    // Flip one content byte: the tar still parses, the digest no longer matches.
    const at = data.indexOf(Buffer.from("real content"));
    data[at] = "R".charCodeAt(0);
    const archive = join(work, "tampered.tar");
    await writeFile(archive, data);
    const out = join(work, "tampered.sif");
    const err = await convertArchiveToSif(archive, out).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageArchiveError);
    expect((err as Error).message).toMatch(/does not match its diff_id/);
    expect(existsSync(out)).toBe(false);
  });

  it.skipIf(!sqfstar)("sqfstar's own failure is a RuntimeError carrying its stderr", async () => {
    const archive = join(work, "small.tar");
    await writeFile(archive, await dockerArchiveOf({ layers: [await tarOf([{ name: "f", content: "x" }])] }));
    const failing = join(work, "failing-sqfstar");
    await writeFile(failing, "#!/bin/sh\ncat >/dev/null\necho 'FATAL ERROR: disk full' >&2\nexit 1\n", {
      mode: 0o755,
    });
    const out = join(work, "failed.sif");
    const err = await convertArchiveToSif(archive, out, { sqfstarPath: failing }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).stderr).toMatch(/disk full/);
    expect(existsSync(out)).toBe(false);
  });

  it("a readable that errors is an ImageArchiveError", async () => {
    const broken = new Readable({
      read() {
        this.destroy(new Error("connection reset"));
      },
    });
    const err = await convertArchiveToSif(broken, join(work, "never.sif"), { tmpDir: work }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageArchiveError);
  });
});
