import { spawnSync } from "node:child_process";
import { onExit } from "signal-exit";

/** How the exit-time helper reaches the daemon: its unix socket, or plain HTTP(S). */
export type DaemonAddress =
  | { socketPath: string }
  | { host: string; port: number; protocol: "http" | "https"; ca?: string; cert?: string; key?: string };

/** The address of dockerode's modem, where the helper can use it (not over ssh). */
export async function daemonAddress(modem: Record<string, unknown>): Promise<DaemonAddress | undefined> {
  // docker-modem 5 leaves the default socket as a function that finds it (~/.docker/run first).
  const socketPath = typeof modem.socketPath === "function" ? await modem.socketPath() : modem.socketPath;
  if (typeof socketPath === "string" && socketPath) return { socketPath };
  const protocol = modem.protocol === "https" ? "https" : modem.protocol === "http" ? "http" : undefined;
  if (!protocol || typeof modem.host !== "string") return undefined;
  const text = (v: unknown) =>
    typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("utf8") : undefined;
  const [ca, cert, key] = [text(modem.ca), text(modem.cert), text(modem.key)];
  return {
    host: modem.host,
    port: Number(modem.port ?? (protocol === "https" ? 2376 : 2375)),
    protocol,
    ...(ca && { ca }),
    ...(cert && { cert }),
    ...(key && { key }),
  };
}

// Run by a fresh Node process: DELETE /containers/ID?force=true&v=true for each id, in parallel.
const REMOVE_SCRIPT = `
const { address, ids } = JSON.parse(process.argv[1]);
const transport = require(address.protocol === "https" ? "node:https" : "node:http");
const base = address.socketPath ? { socketPath: address.socketPath } : address;
Promise.all(ids.map((id) => new Promise((done) => {
  const req = transport.request({ ...base, method: "DELETE", path: "/containers/" + id + "?force=true&v=true" }, (res) => { res.resume(); res.on("end", done); });
  req.on("error", done);
  req.setTimeout(8000, () => { req.destroy(); done(); });
  req.end();
})));
`;

/**
 * Removes containers when this process ends (normal exit, an uncaught error, SIGINT, SIGTERM,
 * SIGHUP: signal-exit's events), as the Apptainer backend kills its containers then. Exit
 * handlers run synchronously and the daemon speaks HTTP, so a short-lived Node process does the
 * removal while this one waits (bounded). `ids()` gives what is still there at that moment.
 * Returns the unhook function. A SIGKILL runs nothing: the owner labels' sweep is for that.
 */
export function removeOnExit(address: DaemonAddress, ids: () => string[]): () => void {
  return onExit(() => {
    const left = ids();
    if (left.length === 0) return;
    spawnSync(process.execPath, ["-e", REMOVE_SCRIPT, JSON.stringify({ address, ids: left })], {
      stdio: "ignore",
      timeout: 10_000,
      // Nothing of this process's options (NODE_OPTIONS loaders) is needed, or wanted.
      env: {},
    });
  });
}
