import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ContainerSpec } from "../spec.js";
import { PYTHON_LIKE_CLIENT_SH } from "../testing/side-channel-scripts.js";
import { validateSpec } from "../validate-spec.js";
import { openSideChannels } from "./open-side-channels.js";

const image = `sha256:${"a".repeat(64)}`;
let scratchDir: string;
beforeAll(async () => {
  scratchDir = await mkdtemp(join(tmpdir(), "contexec-open-side-"));
});
afterAll(async () => {
  await rm(scratchDir, { recursive: true, force: true });
});

describe("openSideChannels", () => {
  it("is a no-op, making nothing, for a spec without side channels", async () => {
    const spec: ContainerSpec = { image, command: ["true"] };
    const channels = await openSideChannels(spec, { scratchDir });
    expect(channels.mounts).toEqual([]);
    expect(channels.applyTo(spec, { env: [] })).toBe(spec);
    expect(await channels.completeExit({ exitCode: 0, oomKilled: false })).toEqual({
      exitCode: 0,
      oomKilled: false,
    });
    await channels.close();
    expect(await readdir(scratchDir)).toEqual([]);
  });

  it("binds the request folder, the client links (read-only, first on PATH) and the supervision folder", async () => {
    const spec: ContainerSpec = {
      image,
      env: { A: "1" },
      mounts: [{ type: "tmpfs", target: "/scratch" }],
      hostCommands: { allow: ["printf", "/usr/bin/env"] },
      supervision: {},
    };
    const channels = await openSideChannels(spec, { scratchDir });
    try {
      const [requests, bin, service] = channels.mounts;
      expect(channels.mounts.map((m) => [m.target, m.readOnly ?? false])).toEqual([
        ["/var/run/req_run", false],
        ["/hostbin", true],
        ["/service", false],
      ]);
      expect(channels.pathPrefix).toBe("/hostbin");
      expect((await stat(join(requests?.source ?? "", "reqs"))).isFIFO()).toBe(true);
      expect((await stat(requests?.source ?? "")).mode & 0o777).toBe(0o777);
      expect((await readdir(bin?.source ?? "")).sort()).toEqual(["contexec-host-command", "env", "printf"]);
      expect(await readdir(service?.source ?? "")).toEqual(["notifications.txt"]);
      const applied = channels.applyTo(spec, { env: ["PATH=/usr/bin:/bin", "B=2"] });
      expect(applied.env).toEqual({ A: "1", PATH: "/hostbin:/usr/bin:/bin" });
      expect(applied.mounts?.map((m) => m.target)).toEqual([
        "/scratch",
        "/var/run/req_run",
        "/hostbin",
        "/service",
      ]);
      expect(applied.hostCommands).toBeUndefined();
      expect(applied.supervision).toBeUndefined();
      await expect(validateSpec(applied)).resolves.toBe(applied);
      expect(channels.applyTo({ ...spec, env: { PATH: "/opt/bin" } }, { env: [] }).env?.PATH).toBe(
        "/hostbin:/opt/bin",
      );
      expect(channels.applyTo({ ...spec, env: undefined }, { env: [] }).env?.PATH).toBe(
        "/hostbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      );
      await writeFile(join(service?.source ?? "", "result.txt"), "42\n");
      expect(await channels.completeExit({ exitCode: 0, oomKilled: false })).toEqual({
        exitCode: 0,
        oomKilled: false,
        result: "42\n",
      });
    } finally {
      await channels.close();
      await channels.close();
    }
    expect(await readdir(scratchDir)).toEqual([]);
  });

  it("removes what it made when a step fails", async () => {
    const given = await mkdtemp(join(tmpdir(), "contexec-given-"));
    try {
      await mkdir(join(given, "notifications.txt"));
      await expect(
        openSideChannels(
          { image, hostCommands: { allow: ["a"] }, supervision: { hostDir: given } },
          { scratchDir },
        ),
      ).rejects.toThrow(/EISDIR|illegal operation on a directory/);
      expect(await readdir(scratchDir)).toEqual([]);
      expect(await readdir(given)).toEqual(["notifications.txt"]);
    } finally {
      await rm(given, { recursive: true, force: true });
    }
  });

  it("serves the test client that mimics the Python one; its .cmd file is the Python client's, byte for byte", async () => {
    const channels = await openSideChannels({ image, hostCommands: { allow: ["printf"] } }, { scratchDir });
    try {
      const dir = channels.mounts[0]?.source ?? "";
      const args = ["printf", "%s\\0", "it's", "a b", "$(id)", "", "safe-@%+=:,./x", "ü", "x\ny"];
      for (const shell of ["dash", "busybox"]) {
        const argv =
          shell === "busybox"
            ? ["sh", "-c", PYTHON_LIKE_CLIENT_SH, "client", ...args]
            : ["-c", PYTHON_LIKE_CLIENT_SH, "client", ...args];
        const r = await promisify(execFile)(shell, argv, { env: { PATH: process.env.PATH, REQ_DIR: dir } });
        expect(r.stdout.split("\0").slice(0, -1)).toEqual(args.slice(2));
      }
      const cmdFiles = (await readdir(dir)).filter((n) => n.endsWith(".cmd"));
      expect(cmdFiles).toHaveLength(2);
      for (const name of cmdFiles) {
        expect(name).toMatch(/^[A-Za-z0-9_-]{22}==\.cmd$/);
        expect(await readFile(join(dir, name), "utf8")).toBe(
          `#!/bin/bash\nprintf '%s\\0' 'it'"'"'s' 'a b' '$(id)' '' safe-@%+=:,./x 'ü' 'x\ny'`,
        );
        expect((await stat(join(dir, name))).mode & 0o777).toBe(0o755);
      }
    } finally {
      await channels.close();
    }
  });
});
