import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type RunningRegistry, startRegistry } from "./registry-process.js";
import { makeTestCertificates } from "./test-certificates.js";
import { startTokenServer } from "./token-server.js";

const run = promisify(execFile);

/** Where the test registries are and how to get in: plain data, passed from vitest's global setup to the tests. */
export interface TestRegistries {
  /** Plain HTTP, anonymous pull and push. */
  plain: { host: string };
  /** HTTPS with a certificate from a CA made for this run, Basic auth (htpasswd). */
  secure: { host: string; caCert: string; username: string; password: string };
  /** Plain HTTP with token auth (Bearer), tokens from a token service of this process. */
  token: { host: string; username: string; password: string; tokenStatsUrl: string };
}

export interface StartedTestRegistries {
  registries: TestRegistries;
  stop(): Promise<void>;
}

/**
 * Starts the three registries the runtime tests share (once per test run): plain, TLS with
 * htpasswd, and token auth. Credentials are made up for the run.
 */
export async function startTestRegistries(): Promise<StartedTestRegistries> {
  const dir = await mkdtemp(join(tmpdir(), "contexec-registry-files-"));
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    await Promise.all(stops.map((s) => s().catch(() => {})));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const certs = await makeTestCertificates(dir);
    const username = "contexec";
    const password = `pw-${Math.random().toString(36).slice(2)}`;
    // The registry reads bcrypt entries only; htpasswd -B writes them.
    const { stdout } = await run("htpasswd", ["-Bbn", username, password]);
    const htpasswd = join(dir, "htpasswd");
    await writeFile(htpasswd, stdout);
    const tokenServer = await startTokenServer({
      users: { [username]: password },
      service: "contexec-test-registry",
      issuer: "contexec-test-issuer",
      certPath: certs.tokenCert,
      keyPath: certs.tokenKey,
    });
    stops.push(() => tokenServer.stop());
    const results = await Promise.allSettled([
      startRegistry(),
      startRegistry({ tls: { cert: certs.serverCert, key: certs.serverKey }, htpasswd }),
      startRegistry({
        token: {
          realm: tokenServer.realm,
          service: "contexec-test-registry",
          issuer: "contexec-test-issuer",
          rootCert: certs.tokenCert,
        },
      }),
    ]);
    for (const r of results) if (r.status === "fulfilled") stops.push(() => r.value.stop());
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const [plain, secure, token] = results.map(
      (r) => (r as PromiseFulfilledResult<RunningRegistry>).value,
    ) as [RunningRegistry, RunningRegistry, RunningRegistry];
    return {
      registries: {
        plain: { host: plain.host },
        secure: { host: secure.host, caCert: certs.caCert, username, password },
        token: { host: token.host, username, password, tokenStatsUrl: tokenServer.statsUrl },
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
