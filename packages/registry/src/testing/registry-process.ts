import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { findFreePort } from "@contexec/core";

/** The set-up script that installs the registry and renders its config (one place for both). */
export const SETUP_REGISTRY_SCRIPT = fileURLToPath(
  new URL("../../../../scripts/setup-registry.sh", import.meta.url),
);

const DIR_PREFIX = "contexec-registry-";

export interface RegistryProcessOptions {
  /** HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
  /** Basic auth from this htpasswd file (bcrypt entries). */
  htpasswd?: string;
  /** Token auth: the token service's realm, the names it signs with, its certificate. */
  token?: { realm: string; service: string; issuer: string; rootCert: string };
  /** The set-up script; default this repository's scripts/setup-registry.sh. */
  script?: string;
}

/** A registry process on 127.0.0.1 that this process started. */
export interface RunningRegistry {
  /** "127.0.0.1:PORT", as image references name it. */
  host: string;
  pid: number;
  /** Its folder: config.yml, storage/, registry.log. */
  dir: string;
  /** Stops it (SIGTERM, then SIGKILL) and removes its folder. */
  stop(): Promise<void>;
}

/**
 * Starts Debian's docker-registry (through `setup-registry.sh serve`, which writes its
 * config.yml) on a free port of 127.0.0.1, in a folder of its own under the OS temp folder, and
 * waits until it answers the distribution API. A port taken between choosing and binding it is
 * retried on another. Registries whose starting process died without stopping them are swept
 * first (see {@link sweepStaleRegistries}).
 */
export async function startRegistry(options: RegistryProcessOptions = {}): Promise<RunningRegistry> {
  sweepStaleRegistries();
  const dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, "owner.pid"), String(process.pid));
  let lastError: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await findFreePort();
    const args = ["serve", "--dir", dir, "--port", String(port)];
    if (options.tls) args.push("--tls-cert", options.tls.cert, "--tls-key", options.tls.key);
    if (options.htpasswd) args.push("--htpasswd", options.htpasswd);
    if (options.token) {
      args.push(
        "--token-realm",
        options.token.realm,
        "--token-service",
        options.token.service,
        "--token-issuer",
        options.token.issuer,
        "--token-rootcert",
        options.token.rootCert,
      );
    }
    const log = openSync(join(dir, "registry.log"), "a");
    let child: ChildProcess;
    try {
      child = spawn(options.script ?? SETUP_REGISTRY_SCRIPT, args, { stdio: ["ignore", log, log] });
    } finally {
      closeSync(log);
    }
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.once("error", () => {});
    const pid = child.pid ?? -1;
    writeFileSync(join(dir, "registry.pid"), String(pid));
    const host = `127.0.0.1:${port}`;
    const ready = await waitForRegistry(host, options.tls !== undefined, exited);
    if (ready) {
      return {
        host,
        pid,
        dir,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill("SIGTERM");
            const stopped = await Promise.race([exited.then(() => true), delay(5000).then(() => false)]);
            if (!stopped) child.kill("SIGKILL");
            await exited;
          }
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill("SIGKILL");
    await exited;
    lastError = readFileSync(join(dir, "registry.log"), "utf8").split("\n").slice(-10).join("\n");
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`the registry did not start; its log ends with:\n${String(lastError)}`);
}

/** Polls GET /v2/ until the registry answers as a registry; false when it exits or stays silent 15 s. */
async function waitForRegistry(
  host: string,
  secure: boolean,
  exited: Promise<number | null>,
): Promise<boolean> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !gone) {
    const answer = await new Promise<boolean>((resolve) => {
      const req = (secure ? https : http).get(
        // Readiness only: the certificate is checked by the tests that use it.
        {
          host: "127.0.0.1",
          port: Number(host.split(":")[1]),
          path: "/v2/",
          rejectUnauthorized: false,
          timeout: 1000,
        },
        (res) => {
          res.resume();
          resolve(res.headers["docker-distribution-api-version"] === "registry/2.0");
        },
      );
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
    });
    if (answer && !gone) return true;
    await delay(50);
  }
  return false;
}

/**
 * Removes registries that a test process started and could not stop (it was killed): a folder
 * of ours whose owner process is gone; its registry is killed only when its command line names
 * that folder's config (the pid was not reused by something else).
 */
export function sweepStaleRegistries(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((n) => n.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(tmpdir(), name);
    const owner = readNumber(join(dir, "owner.pid"));
    if (owner !== undefined && alive(owner)) continue;
    // A folder just made by a starting process has no owner file yet.
    if (owner === undefined && Date.now() - mtimeOf(dir) < 60_000) continue;
    const pid = readNumber(join(dir, "registry.pid"));
    if (pid !== undefined && alive(pid)) {
      let cmdline = "";
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        // gone meanwhile
      }
      if (cmdline.includes(join(dir, "config.yml"))) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Date.now();
  }
}

function readNumber(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
