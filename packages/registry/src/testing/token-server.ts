import { createSign, randomUUID, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";

export interface TokenServerOptions {
  /** User name -> password of the accounts that get push and pull. */
  users: Record<string, string>;
  /** The `service` and `issuer` the registry's token config names. */
  service: string;
  issuer: string;
  /** PEM files of the signing certificate (the registry's rootcertbundle) and its key. */
  certPath: string;
  keyPath: string;
}

/** What the token server saw, for tests that count requests. */
export interface TokenServerStats {
  requests: number;
  refused: number;
}

export interface RunningTokenServer {
  /** The realm the registry sends clients to: http://127.0.0.1:PORT/token */
  realm: string;
  /** GET gives {@link TokenServerStats} as JSON. */
  statsUrl: string;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/**
 * A token service for the distribution registry's `auth.token` mode, as Docker Hub's: a GET with
 * Basic credentials and `scope=repository:NAME:ACTIONS` gets a JWT (RS256, the signing
 * certificate in its x5c header) granting those actions; wrong credentials get 401; no
 * credentials get a token granting nothing. Listens on 127.0.0.1.
 */
export async function startTokenServer(options: TokenServerOptions): Promise<RunningTokenServer> {
  const [certPem, keyPem] = await Promise.all([
    readFile(options.certPath, "utf8"),
    readFile(options.keyPath, "utf8"),
  ]);
  const x5c = new X509Certificate(certPem).raw.toString("base64");
  const stats: TokenServerStats = { requests: 0, refused: 0 };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/stats") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(stats));
      return;
    }
    if (url.pathname !== "/token") {
      res.writeHead(404).end();
      return;
    }
    stats.requests++;
    let account: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith("Basic ")) {
      const decoded = Buffer.from(auth.slice(6), "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      const user = decoded.slice(0, colon);
      if (
        colon < 0 ||
        options.users[user] === undefined ||
        options.users[user] !== decoded.slice(colon + 1)
      ) {
        stats.refused++;
        res
          .writeHead(401, { "content-type": "application/json" })
          .end('{"details":"incorrect username or password"}');
        return;
      }
      account = user;
    }
    const access = account
      ? url.searchParams.getAll("scope").flatMap((scope) => {
          const m = /^repository:([^:]+):(.+)$/.exec(scope);
          return m ? [{ type: "repository", name: m[1], actions: (m[2] as string).split(",") }] : [];
        })
      : [];
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [x5c] };
    const claims = {
      iss: options.issuer,
      sub: account ?? "",
      aud: options.service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = createSign("RSA-SHA256").update(signingInput).sign(keyPem);
    const token = `${signingInput}.${b64url(signature)}`;
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(
        JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as { port: number };
  return {
    realm: `http://127.0.0.1:${port}/token`,
    statsUrl: `http://127.0.0.1:${port}/stats`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
