import * as http from "node:http";
import * as https from "node:https";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tls from "node:tls";

/** The connection pools of one client: keep-alive, and for HTTPS the CAs it trusts. */
export interface Agents {
  http: http.Agent;
  https: https.Agent;
}

export interface AgentOptions {
  /** Extra CA certificates (PEM) trusted besides Node's bundled ones. */
  ca?: readonly (string | Buffer)[] | undefined;
  /** Connections per host; default 16. */
  maxSockets?: number | undefined;
}

export function createAgents(options: AgentOptions = {}): Agents {
  const common = { keepAlive: true, maxSockets: options.maxSockets ?? 16, scheduling: "lifo" as const };
  return {
    http: new http.Agent(common),
    // `ca` replaces Node's bundle, so the bundle is passed along with the extra CAs.
    https: new https.Agent({
      ...common,
      ...(options.ca && options.ca.length > 0 && { ca: [...tls.rootCertificates, ...options.ca] }),
    }),
  };
}

export interface HttpRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  /** A buffer, or a function giving a fresh stream for each attempt. */
  body?: Buffer | (() => Readable) | undefined;
  signal?: AbortSignal | undefined;
  /** The connection is given up when nothing moves on it for this long. */
  idleTimeoutMs: number;
}

/** A failure below HTTP: refused, reset, timed out, a TLS handshake that failed. */
export class TransportError extends Error {
  readonly code: string | undefined;
  constructor(message: string, options: { cause?: unknown; code?: string | undefined } = {}) {
    super(message, { cause: options.cause });
    this.code = options.code;
  }
}

// Certificate problems: asking again gives the same answer.
const TLS_TRUST_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REVOKED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "HOSTNAME_MISMATCH",
]);

/** A certificate the client does not trust: not worth a retry. */
export function isTlsTrustError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "string" && TLS_TRUST_CODES.has(code);
}

/** A server that answered a TLS handshake in plain HTTP. */
export function isPlainHttpAnswer(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; cause?: unknown };
  const text = `${String(e?.code)} ${String(e?.message)}`;
  return /wrong version number|packet length too long|ERR_SSL_WRONG_VERSION_NUMBER|http request/i.test(text);
}

/**
 * Sends one request and resolves with the response as soon as its headers arrive (the body is
 * the caller's to read or drain). Failures before that reject with {@link TransportError} (the
 * original error as `cause`), or with the signal's abort.
 */
export function sendRequest(req: HttpRequest, agents: Agents): Promise<http.IncomingMessage> {
  const secure = req.url.protocol === "https:";
  const mod = secure ? https : http;
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      reject(err);
    };
    let request: http.ClientRequest;
    try {
      request = mod.request(req.url, {
        method: req.method,
        headers: req.headers,
        agent: secure ? agents.https : agents.http,
        ...(req.signal && { signal: req.signal }),
      });
    } catch (err) {
      fail(
        new TransportError(`cannot send ${req.method} ${req.url.href}: ${(err as Error).message}`, {
          cause: err,
        }),
      );
      return;
    }
    request.setTimeout(req.idleTimeoutMs, () => {
      request.destroy(
        Object.assign(new Error(`no answer for ${req.idleTimeoutMs} ms`), { code: "ETIMEDOUT" }),
      );
    });
    request.on("response", (res) => {
      settled = true;
      resolve(res);
    });
    request.on("error", (err: NodeJS.ErrnoException) => {
      if (req.signal?.aborted) return fail(err);
      fail(
        new TransportError(`${req.method} ${req.url.host}${req.url.pathname}: ${err.message}`, {
          cause: err,
          code: err.code,
        }),
      );
    });
    const body = req.body;
    if (body === undefined) request.end();
    else if (Buffer.isBuffer(body)) request.end(body);
    else {
      pipeline(body(), request).catch((err: Error) => request.destroy(err));
    }
  });
}

/** Reads a response body into memory, refusing more than `limit` bytes. */
export async function readBody(res: http.IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.destroy();
      throw new RangeError(`the response is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Reads and drops what is left of a response so its connection goes back to the pool. */
export async function drain(res: http.IncomingMessage): Promise<void> {
  // Even a complete body must be read out: the socket goes back to the pool only at its end.
  if (res.readableEnded || res.destroyed) return;
  try {
    let left = 64 * 1024;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      left -= chunk.length;
      if (left < 0) {
        res.destroy();
        return;
      }
    }
  } catch {
    // A body that fails while being dropped does not matter.
  }
}
