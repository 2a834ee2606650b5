import * as http from "node:http";
import * as https from "node:https";

/** What the proxy does with one request, instead of passing it on unchanged. */
export type Fault =
  /** Pass the answer on, but cut the connection after this many body bytes. */
  | { kind: "drop-after"; bytes: number }
  /** Answer with this status (and headers) without asking the registry. */
  | { kind: "status"; status: number; headers?: Record<string, string> }
  /** Pass the answer on with the byte at this offset of the body flipped. */
  | { kind: "corrupt"; at: number }
  /** Answer 307 to the proxy's own "storage" port, which serves the same path without credentials. */
  | { kind: "redirect" }
  /** Pass the request on without its Range header (a registry that ignores ranges). */
  | { kind: "ignore-range" };

/** One request as the proxy saw it. */
export interface SeenRequest {
  method: string;
  path: string;
  range: string | undefined;
  authorization: boolean;
  status: number;
  /** Whether it reached the proxy's storage port (after a redirect). */
  storage: boolean;
}

export interface FaultProxy {
  /** "127.0.0.1:PORT": name images through it as they are named through the registry. */
  host: string;
  requests: SeenRequest[];
  /** Decides the fault for a request; `n` counts requests of the same method and path, from 1. */
  fault: (req: http.IncomingMessage, n: number) => Fault | undefined;
  /** Forgets the requests seen and the counts, and passes everything on unchanged again. */
  reset(): void;
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  /** The registry speaks HTTPS with a certificate from this CA (PEM text). */
  upstreamCa?: string;
  /**
   * What the storage port sends upstream as Authorization in place of the client's (a
   * pre-signed URL's own authorisation); default none.
   */
  storageAuthorization?: string;
}

/**
 * A plain HTTP proxy in front of a registry that can drop, refuse, corrupt and redirect
 * requests as a test tells it to, and records every request it saw. Tests of retries, resumes,
 * redirects, request counts and digest checks run a real registry through it.
 */
export async function startFaultProxy(
  upstream: string,
  options: FaultProxyOptions = {},
): Promise<FaultProxy> {
  const [upHost, upPort] = upstream.split(":") as [string, string];
  const secure = options.upstreamCa !== undefined;
  const counts = new Map<string, number>();
  const proxy: FaultProxy = {
    host: "",
    requests: [],
    fault: () => undefined,
    reset: () => {
      proxy.requests.length = 0;
      counts.clear();
      proxy.fault = () => undefined;
    },
    stop: async () => {},
  };

  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: SeenRequest,
    fault: Fault | undefined,
  ): void => {
    // The registry builds upload URLs from the scheme it is reached by: tell it the client's.
    const headers = { ...req.headers, "x-forwarded-proto": "http" };
    if (fault?.kind === "ignore-range") delete headers.range;
    const up = (secure ? https : http).request(
      {
        host: upHost,
        port: Number(upPort),
        method: req.method,
        path: req.url,
        headers,
        ...(secure && { ca: options.upstreamCa, servername: "localhost" }),
      },
      (upRes) => {
        record.status = upRes.statusCode ?? 0;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        let sent = 0;
        upRes.on("data", (chunk: Buffer) => {
          let out = chunk;
          if (fault?.kind === "corrupt" && fault.at >= sent && fault.at < sent + chunk.length) {
            out = Buffer.from(chunk);
            out[fault.at - sent] = (out[fault.at - sent] as number) ^ 0xff;
          }
          if (fault?.kind === "drop-after" && sent + out.length >= fault.bytes) {
            const keep = fault.bytes - sent;
            sent += keep;
            res.write(out.subarray(0, keep), () => res.socket?.destroy());
            upRes.destroy();
            return;
          }
          sent += out.length;
          if (!res.write(out)) {
            upRes.pause();
            res.once("drain", () => upRes.resume());
          }
        });
        upRes.on("end", () => res.end());
        upRes.on("error", () => res.socket?.destroy());
      },
    );
    up.on("error", () => {
      record.status = 502;
      if (!res.headersSent) res.writeHead(502).end();
      else res.socket?.destroy();
    });
    req.pipe(up);
  };

  const storage = http.createServer((req, res) => {
    const record: SeenRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      range: req.headers.range,
      authorization: req.headers.authorization !== undefined,
      status: 0,
      storage: true,
    };
    proxy.requests.push(record);
    // The storage serves without the registry's credentials, as a pre-signed URL does.
    delete req.headers.authorization;
    if (options.storageAuthorization) req.headers.authorization = options.storageAuthorization;
    forward(req, res, record, undefined);
  });

  const server = http.createServer((req, res) => {
    const key = `${req.method} ${req.url}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    const record: SeenRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      range: req.headers.range,
      authorization: req.headers.authorization !== undefined,
      status: 0,
      storage: false,
    };
    proxy.requests.push(record);
    const fault = proxy.fault(req, n);
    if (fault?.kind === "status") {
      record.status = fault.status;
      req.resume();
      res
        .writeHead(fault.status, { "content-type": "application/json", ...fault.headers })
        .end('{"errors":[]}');
      return;
    }
    if (fault?.kind === "redirect") {
      record.status = 307;
      req.resume();
      const { port } = storage.address() as { port: number };
      res.writeHead(307, { location: `http://127.0.0.1:${port}${req.url}` }).end();
      return;
    }
    forward(req, res, record, fault);
  });
  const listen = (s: http.Server) =>
    new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(0, "127.0.0.1", resolve);
    });
  await Promise.all([listen(server), listen(storage)]);
  proxy.host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  proxy.stop = async () => {
    for (const s of [server, storage]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  };
  return proxy;
}
