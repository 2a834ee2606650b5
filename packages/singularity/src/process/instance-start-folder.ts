import { readFile } from "node:fs/promises";

/**
 * Which `instance start` made an instance. A name says nothing (a refused duplicate has the
 * same name as the instance it collided with), so the library starts each instance in a folder
 * of its own, and Apptainer records that folder: its starter passes the whole engine config,
 * `engineConfig.jsonConfig.cwd` included, to the instance's processes as ENGINE_CONFIG1..N
 * (ENGINE_CONFIG_CHUNKS of them; Apptainer 1.4.5), where /proc/PID/environ shows it.
 */

/** The start folder recorded in one instance process's environment (`/proc/PID/environ` text). */
export function engineConfigCwd(environ: string): string | undefined {
  const vars = new Map<string, string>();
  for (const entry of environ.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) vars.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  const chunks = Number(vars.get("ENGINE_CONFIG_CHUNKS") ?? "1");
  if (!Number.isInteger(chunks) || chunks < 1 || chunks > 1000) return undefined;
  let json = "";
  for (let i = 1; i <= chunks; i++) {
    const part = vars.get(`ENGINE_CONFIG${i}`);
    if (part === undefined) return undefined;
    json += part;
  }
  try {
    const config = JSON.parse(json) as { engineConfig?: { jsonConfig?: { cwd?: unknown } } };
    const cwd = config.engineConfig?.jsonConfig?.cwd;
    return typeof cwd === "string" ? cwd : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The folder the instance whose process is `pid` was started from; undefined when that cannot
 * be read (the process has gone, or its environment is closed to us, as under a setuid starter).
 */
export async function instanceStartFolder(pid: number): Promise<string | undefined> {
  try {
    return engineConfigCwd(await readFile(`/proc/${pid}/environ`, "utf8"));
  } catch {
    return undefined;
  }
}
