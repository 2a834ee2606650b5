import { createHash } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import {
  AbortedError,
  ContainerError,
  type RegistryAccessOptions,
  RegistryAuthError,
  type RegistryCredentials,
  RegistryError,
  throwIfAborted,
} from "@contexec/core";
import pRetry from "p-retry";
import { credentialsResolver, RegistryAuthenticator } from "./auth/authenticator.js";
import { dockerConfigCredentials, type ResolvedCredentials } from "./auth/docker-config.js";
import { parseWwwAuthenticate } from "./auth/www-authenticate.js";
import { type Descriptor, MANIFEST_ACCEPT, type Manifest, parseManifest } from "./manifest/parse-manifest.js";
import {
  formatImageReference,
  type ImageReference,
  isLoopbackRegistry,
  parseImageReference,
  registryApiHost,
} from "./reference/image-reference.js";
import {
  formatPlatform,
  hostPlatform,
  type Platform,
  parsePlatform,
  selectPlatform,
} from "./reference/platform.js";
import { openVerifiedBlob } from "./transport/blob-stream.js";
import {
  type Agents,
  createAgents,
  drain,
  isPlainHttpAnswer,
  isTlsTrustError,
  readBody,
  sendRequest,
  TransportError,
} from "./transport/http-request.js";

/** The client's options: core's {@link RegistryAccessOptions} (credentials, CA, plain-HTTP hosts, retries). */
export type RegistryClientOptions = RegistryAccessOptions;

/** An image found in a registry: what its manifest says, nothing fetched beyond it. */
export interface RemoteImage {
  reference: ImageReference;
  /** Digest of the image manifest (the platform's own, for a multi-platform image). */
  manifestDigest: string;
  manifestMediaType: string;
  /** Digest of the index the manifest was picked from, for a multi-platform image. */
  indexDigest?: string;
  /** The platform picked from the index, for a multi-platform image. */
  platform?: Platform;
  /** The image id: the digest of its config, as on every backend. */
  id: string;
  config: Descriptor;
  /** Bottom layer first. */
  layers: Descriptor[];
}

/** A manifest as fetched: its digest, media type, the bytes, and what they say. */
export interface FetchedManifest {
  digest: string;
  mediaType: string;
  body: Buffer;
  manifest: Manifest;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Credentials for this call, over the client's. */
  auth?: RegistryCredentials | undefined;
}

export interface ResolveOptions extends CallOptions {
  /** "os/arch[/variant]" or a Platform; default this machine's. */
  platform?: string | Platform | undefined;
}

export interface BlobOptions extends CallOptions {
  /** Bytes received so far, as they arrive (resumed bytes counted once). */
  onBytes?: ((n: number) => void) | undefined;
}

/** One request to a registry, as the client's request machinery takes it. */
export interface RegistryRequest extends CallOptions {
  registry: string;
  repository: string;
  /** The access the request needs ("pull", "pull,push"): the token scope. */
  actions: string;
  method: string;
  /** A path under the registry ("/v2/..."), or an absolute URL (upload locations). */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | (() => Readable);
  /** Follow redirects (blob downloads go to storage); without it a 3xx is the answer. */
  followRedirects?: boolean;
  /** Names what is asked for in messages: "manifest of busybox:1". */
  what: string;
  /** Statuses that are answers rather than failures (404 for an existence check). */
  accept?: readonly number[];
  /** Retries of this request; default the client's. 0 for a request whose body cannot be sent twice. */
  retries?: number;
}

const MANIFEST_LIMIT = 4 * 1024 * 1024;
const CONFIG_LIMIT = 64 * 1024 * 1024;
const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
// The longest Retry-After honoured; a registry asking for more gets the retry anyway.
const RETRY_AFTER_CAP_MS = 30_000;

/** An answer worth asking again: 429, 5xx. */
class RetryableStatus extends Error {
  constructor(
    readonly status: number,
    readonly retryAfterMs: number | undefined,
    message: string,
  ) {
    super(message);
  }
}

interface RegistryState {
  scheme: "https:" | "http:" | undefined;
  authenticators: Map<string, RegistryAuthenticator>;
}

/**
 * A client of the Docker/OCI distribution API (v2), over Node's own http/https: manifests and
 * indexes by tag or digest, blobs as verified streams, pushes. One client keeps connections,
 * learned schemes and tokens for every registry it talks to; use one per program, close() it at
 * the end. Every answer is checked against the digest that names it.
 */
export class RegistryClient {
  readonly options: Readonly<RegistryClientOptions>;
  readonly #agents: Agents;
  readonly #registries = new Map<string, RegistryState>();
  readonly #plainHttp: Set<string>;

  constructor(options: RegistryClientOptions = {}) {
    this.options = options;
    const ca =
      options.ca === undefined
        ? []
        : Array.isArray(options.ca)
          ? options.ca
          : [options.ca as string | Buffer];
    this.#agents = createAgents({ ca });
    this.#plainHttp = new Set(options.plainHttp ?? []);
  }

  /** Layers a pull fetches at once. */
  get concurrency(): number {
    return Math.max(1, this.options.concurrency ?? 3);
  }

  /** Closes the pooled connections. */
  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  /**
   * Finds the image a reference names: its manifest (for a multi-platform index, the manifest
   * for `platform`, default this machine's), its config and layer descriptors. By tag this costs
   * one manifest request (two for an index); nothing else is fetched.
   */
  async resolveImage(reference: string | ImageReference, options: ResolveOptions = {}): Promise<RemoteImage> {
    const ref = typeof reference === "string" ? parseImageReference(reference) : reference;
    const wanted =
      options.platform === undefined
        ? hostPlatform()
        : typeof options.platform === "string"
          ? parsePlatform(options.platform)
          : options.platform;
    let fetched = await this.fetchManifest(ref, options);
    let indexDigest: string | undefined;
    let platform: Platform | undefined;
    for (let depth = 0; fetched.manifest.kind === "index"; depth++) {
      const index = fetched.manifest;
      if (depth > 2) {
        throw new RegistryError(
          ref.registry,
          "protocol",
          `${formatImageReference(ref)}: indexes nest too deeply`,
        );
      }
      const pick = selectPlatform(
        index.manifests.map((d) => d.platform),
        wanted,
      );
      if (pick === -1) {
        const offered = index.manifests
          .map((d) => (d.platform ? formatPlatform(d.platform) : undefined))
          .filter((p): p is string => p !== undefined && !p.startsWith("unknown/"));
        throw new RegistryError(
          ref.registry,
          "platform",
          `${formatImageReference(ref)} has no image for ${formatPlatform(wanted)}; it has ${offered.join(", ") || "none with a platform"}. Pass the platform option to pick one`,
        );
      }
      const chosen = index.manifests[pick] as Descriptor;
      indexDigest ??= fetched.digest;
      platform = chosen.platform;
      fetched = await this.fetchManifest({ ...ref, tag: undefined, digest: chosen.digest }, options);
    }
    const image = fetched.manifest;
    return {
      reference: ref,
      manifestDigest: fetched.digest,
      manifestMediaType: fetched.mediaType,
      ...(indexDigest !== undefined && { indexDigest }),
      ...(platform && { platform }),
      id: image.config.digest,
      config: image.config,
      layers: image.layers,
    };
  }

  /**
   * One manifest or index, by the reference's digest (checked against the bytes) or tag (checked
   * against the registry's Docker-Content-Digest header when it sends one).
   */
  async fetchManifest(ref: ImageReference, options: CallOptions = {}): Promise<FetchedManifest> {
    const tagOrDigest = ref.digest ?? ref.tag ?? "latest";
    const what = `the manifest of ${formatImageReference(ref)}`;
    const res = await this.request({
      ...options,
      registry: ref.registry,
      repository: ref.repository,
      actions: "pull",
      method: "GET",
      path: `/v2/${ref.repository}/manifests/${tagOrDigest}`,
      headers: { accept: MANIFEST_ACCEPT },
      what,
    });
    const body = await this.#read(res, MANIFEST_LIMIT, ref.registry, what, options.signal);
    const algorithm = ref.digest ? (ref.digest.split(":")[0] as string) : "sha256";
    const digest = `${algorithm}:${createHash(algorithm).update(body).digest("hex")}`;
    const claimed = ref.digest ?? headerValue(res.headers["docker-content-digest"]);
    if (claimed?.startsWith(`${algorithm}:`) && claimed !== digest) {
      throw new RegistryError(
        ref.registry,
        "digest-mismatch",
        `${what} does not match its digest ${claimed} (the bytes received hash to ${digest})`,
      );
    }
    const manifest = parseManifest(body, headerValue(res.headers["content-type"]), ref.registry, what);
    return { digest, mediaType: manifest.mediaType, body, manifest };
  }

  /** A small blob (an image config) in memory, checked against its digest. */
  async fetchBlob(
    ref: Pick<ImageReference, "registry" | "repository">,
    descriptor: Descriptor,
    options: CallOptions & { what?: string; limit?: number } = {},
  ): Promise<Buffer> {
    const what = options.what ?? `blob ${descriptor.digest}`;
    const limit = options.limit ?? CONFIG_LIMIT;
    if (descriptor.size > limit) {
      throw new RegistryError(
        ref.registry,
        "protocol",
        `${what} is ${descriptor.size} bytes, more than the ${limit} allowed`,
      );
    }
    const stream = this.openBlob(ref, descriptor, { ...options, what });
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    } catch (err) {
      throw this.#mapStreamError(err, ref.registry, what, options.signal);
    }
    return Buffer.concat(chunks);
  }

  /** The image's config bytes, checked against the image id. */
  fetchConfig(image: RemoteImage, options: CallOptions = {}): Promise<Buffer> {
    return this.fetchBlob(image.reference, image.config, {
      ...options,
      what: `the config of ${formatImageReference(image.reference)}`,
    });
  }

  /**
   * A blob as a stream, checked while it flows (it errors instead of ending when the bytes do not
   * match the descriptor's digest and size), resumed after dropped connections, following
   * redirects to blob storage. Attach consumers at once; errors are ContainerErrors.
   */
  openBlob(
    ref: Pick<ImageReference, "registry" | "repository">,
    descriptor: Descriptor,
    options: BlobOptions & { what?: string } = {},
  ): Readable {
    const what = options.what ?? `blob ${descriptor.digest}`;
    const retries = this.options.retries ?? 4;
    return openVerifiedBlob({
      registry: ref.registry,
      digest: descriptor.digest,
      size: descriptor.size,
      what,
      signal: options.signal,
      onBytes: options.onBytes,
      resumes: retries,
      backoffMs: (attempt) => this.#backoff(attempt),
      open: (offset) =>
        this.request({
          ...options,
          registry: ref.registry,
          repository: ref.repository,
          actions: "pull",
          method: "GET",
          path: `/v2/${ref.repository}/blobs/${descriptor.digest}`,
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
          followRedirects: true,
          what,
        }),
    });
  }

  /**
   * Sends one request: the registry's scheme, credentials (answering its 401 challenge once),
   * redirects when asked, and retries with backoff for dropped connections, 429 and 5xx. Resolves
   * with a 2xx answer (or one listed in `accept`) whose body is the caller's to read. Failures are
   * typed: RegistryAuthError (401/403: never retried), RegistryError ("not-found" for 404,
   * "unreachable" after the retries, "tls" for an untrusted certificate, "protocol" otherwise),
   * AbortedError.
   */
  async request(req: RegistryRequest): Promise<IncomingMessage> {
    throwIfAborted(req.signal, req.what);
    const retries = req.retries ?? this.options.retries ?? 4;
    try {
      return await pRetry(() => this.#attempt(req), {
        retries,
        minTimeout: this.options.retryDelayMs ?? 250,
        maxTimeout: this.options.retryMaxDelayMs ?? 8000,
        factor: 2,
        randomize: true,
        ...(req.signal && { signal: req.signal }),
        shouldRetry: ({ error }) => isRetryable(error),
        onFailedAttempt: async ({ error }) => {
          if (error instanceof RetryableStatus && error.retryAfterMs !== undefined) {
            await delay(
              Math.min(error.retryAfterMs, RETRY_AFTER_CAP_MS),
              undefined,
              req.signal ? { signal: req.signal } : {},
            );
          }
        },
      });
    } catch (err) {
      throw this.#mapFailure(err, req);
    }
  }

  /** Reads a whole answer, mapping a dropped connection or an oversized body to typed errors. */
  async #read(
    res: IncomingMessage,
    limit: number,
    registry: string,
    what: string,
    signal: AbortSignal | undefined,
  ): Promise<Buffer> {
    try {
      return await readBody(res, limit);
    } catch (err) {
      if (err instanceof RangeError) throw new RegistryError(registry, "protocol", `${what}: ${err.message}`);
      throw this.#mapStreamError(err, registry, what, signal);
    }
  }

  async #attempt(req: RegistryRequest): Promise<IncomingMessage> {
    const state = this.#state(req.registry);
    const authenticator = this.#authenticator(req.registry, req.auth);
    const scope = `repository:${req.repository}:${req.actions}`;
    let header = authenticator.headerFor(scope);
    let res = await this.#send(req, state, header);
    if (res.statusCode === 401) {
      const challenges = parseWwwAuthenticate(headerValue(res.headers["www-authenticate"]) ?? "");
      await drain(res);
      header = await authenticator.respond(challenges, scope, header, req.signal);
      res = await this.#send(req, state, header);
      if (res.statusCode === 401) {
        const again = parseWwwAuthenticate(headerValue(res.headers["www-authenticate"]) ?? "");
        await drain(res);
        // Throws: the credentials (or a fresh token) were refused.
        await authenticator.respond(again, scope, header, req.signal);
        throw new RegistryAuthError(req.registry, `${req.what}: the registry refused the credentials`, {
          status: 401,
        });
      }
    }
    return this.#judge(res, req);
  }

  /** Sends with the registry's scheme (learning it for loopback registries) and follows redirects. */
  async #send(
    req: RegistryRequest,
    state: RegistryState,
    authorization: string | undefined,
  ): Promise<IncomingMessage> {
    const headers: Record<string, string> = {
      "user-agent": this.options.userAgent ?? "contexec-registry/0.1",
      ...req.headers,
    };
    let url: URL;
    for (;;) {
      const scheme = state.scheme ?? "https:";
      url = /^https?:\/\//.test(req.path)
        ? new URL(req.path)
        : new URL(`${scheme}//${registryApiHost(req.registry)}${req.path}`);
      try {
        const res = await sendRequest(
          {
            method: req.method,
            url,
            headers: authorization ? { ...headers, authorization } : headers,
            body: req.body,
            signal: req.signal,
            idleTimeoutMs: this.options.idleTimeoutMs ?? 60_000,
          },
          this.#agents,
        );
        if (state.scheme === undefined) state.scheme = url.protocol as "https:" | "http:";
        if (req.followRedirects) return await this.#follow(res, url, req, headers, authorization);
        return res;
      } catch (err) {
        // Docker's rule for loopback registries: HTTPS first, plain HTTP when that is what answers.
        if (state.scheme === undefined && isLoopbackRegistry(req.registry) && isPlainHttpAnswer(err)) {
          state.scheme = "http:";
          continue;
        }
        throw err;
      }
    }
  }

  /** Follows up to five redirects; credentials go only to the registry's own origin. */
  async #follow(
    first: IncomingMessage,
    firstUrl: URL,
    req: RegistryRequest,
    headers: Record<string, string>,
    authorization: string | undefined,
  ): Promise<IncomingMessage> {
    let res = first;
    let url = firstUrl;
    for (let hops = 0; [301, 302, 303, 307, 308].includes(res.statusCode ?? 0); hops++) {
      const location = headerValue(res.headers.location);
      await drain(res);
      if (!location || hops >= 5) {
        throw new RegistryError(
          req.registry,
          "protocol",
          `${req.what}: ${location ? "more than five redirects" : "a redirect without a Location"}`,
          { status: res.statusCode },
        );
      }
      const next = new URL(location, url);
      // Pre-signed storage URLs carry their own authorisation; the registry's must not leak there.
      const sameOrigin = next.origin === firstUrl.origin;
      url = next;
      res = await sendRequest(
        {
          method: req.method === "HEAD" ? "HEAD" : "GET",
          url,
          headers: sameOrigin && authorization ? { ...headers, authorization } : headers,
          signal: req.signal,
          idleTimeoutMs: this.options.idleTimeoutMs ?? 60_000,
        },
        this.#agents,
      );
    }
    return res;
  }

  /** A final answer: returned when it is a success, thrown as the right error otherwise. */
  async #judge(res: IncomingMessage, req: RegistryRequest): Promise<IncomingMessage> {
    const status = res.statusCode ?? 0;
    if ((status >= 200 && status < 300) || req.accept?.includes(status)) return res;
    const detail = await errorDetail(res);
    if (RETRY_STATUSES.has(status)) {
      throw new RetryableStatus(status, retryAfter(res.headers), `${req.what}: HTTP ${status}${detail}`);
    }
    if (status === 401 || status === 403) {
      throw new RegistryAuthError(
        req.registry,
        `${req.what}: access denied (HTTP ${status}${detail}); check the credentials and that they may ${req.actions} ${req.repository}`,
        { status },
      );
    }
    if (status === 404) {
      throw new RegistryError(req.registry, "not-found", `${req.what}: not found (HTTP 404${detail})`, {
        status,
      });
    }
    throw new RegistryError(req.registry, "protocol", `${req.what}: HTTP ${status}${detail}`, { status });
  }

  #mapFailure(err: unknown, req: RegistryRequest): ContainerError {
    if (req.signal?.aborted) return new AbortedError(req.what, { cause: req.signal.reason });
    if (err instanceof ContainerError) return err;
    if (err instanceof RetryableStatus) {
      return new RegistryError(
        req.registry,
        "unreachable",
        `${err.message}, still after ${this.options.retries ?? 4} retries`,
        {
          status: err.status,
          cause: err,
        },
      );
    }
    if (err instanceof TransportError && isTlsTrustError(err.cause)) {
      return new RegistryError(
        req.registry,
        "tls",
        `${req.what}: the registry's certificate is not trusted (${err.code ?? (err.cause as Error)?.message}); give its CA certificate (the ca option)`,
        { cause: err },
      );
    }
    if (err instanceof TransportError) {
      return new RegistryError(
        req.registry,
        "unreachable",
        `${req.what}: ${err.message}${isRetryable(err) ? `, still after ${this.options.retries ?? 4} retries` : ""}`,
        { cause: err },
      );
    }
    return new RegistryError(
      req.registry,
      "protocol",
      `${req.what}: ${(err as Error)?.message ?? String(err)}`,
      { cause: err },
    );
  }

  #mapStreamError(
    err: unknown,
    registry: string,
    what: string,
    signal: AbortSignal | undefined,
  ): ContainerError {
    if (signal?.aborted) return new AbortedError(what, { cause: signal.reason });
    if (err instanceof ContainerError) return err;
    return new RegistryError(registry, "unreachable", `${what}: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
    });
  }

  #backoff(attempt: number): number {
    const min = this.options.retryDelayMs ?? 250;
    const max = this.options.retryMaxDelayMs ?? 8000;
    return Math.min(max, min * 2 ** (attempt - 1)) * (1 + Math.random());
  }

  #state(registry: string): RegistryState {
    let state = this.#registries.get(registry);
    if (!state) {
      state = { scheme: this.#plainHttp.has(registry) ? "http:" : undefined, authenticators: new Map() };
      this.#registries.set(registry, state);
    }
    return state;
  }

  #authenticator(registry: string, callAuth: RegistryCredentials | undefined): RegistryAuthenticator {
    const state = this.#state(registry);
    const key = callAuth ? JSON.stringify(callAuth) : "";
    let authenticator = state.authenticators.get(key);
    if (!authenticator) {
      const resolve = callAuth
        ? credentialsResolver(callAuth, "the auth option")
        : () => this.#clientCredentials(registry);
      authenticator = new RegistryAuthenticator(registry, resolve, (url, init, signal) =>
        this.#tokenRequest(url, init, signal),
      );
      state.authenticators.set(key, authenticator);
    }
    return authenticator;
  }

  async #clientCredentials(registry: string): Promise<ResolvedCredentials> {
    const auth = this.options.auth;
    const given = typeof auth === "function" ? auth(registry) : auth;
    if (given) return { credentials: given, from: "the auth option" };
    if (this.options.dockerConfig === false) return { credentials: undefined, from: undefined };
    return dockerConfigCredentials(registry, {
      ...(typeof this.options.dockerConfig === "string" && { configPath: this.options.dockerConfig }),
      ...(this.options.env && { env: this.options.env }),
    });
  }

  /** A token service request: retried like any other, every status an answer. */
  async #tokenRequest(
    url: URL,
    init: { method: "GET" | "POST"; headers: Record<string, string>; body?: Buffer },
    signal: AbortSignal | undefined,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
    const what = `a token from ${url.origin}${url.pathname}`;
    try {
      return await pRetry(
        async () => {
          const res = await sendRequest(
            {
              method: init.method,
              url,
              headers: { "user-agent": this.options.userAgent ?? "contexec-registry/0.1", ...init.headers },
              body: init.body,
              signal,
              idleTimeoutMs: this.options.idleTimeoutMs ?? 60_000,
            },
            this.#agents,
          );
          const status = res.statusCode ?? 0;
          if (RETRY_STATUSES.has(status)) {
            await drain(res);
            throw new RetryableStatus(status, retryAfter(res.headers), `${what}: HTTP ${status}`);
          }
          return { status, headers: res.headers, body: await readBody(res, 1024 * 1024) };
        },
        {
          retries: this.options.retries ?? 4,
          minTimeout: this.options.retryDelayMs ?? 250,
          maxTimeout: this.options.retryMaxDelayMs ?? 8000,
          randomize: true,
          ...(signal && { signal }),
          shouldRetry: ({ error }) => isRetryable(error),
        },
      );
    } catch (err) {
      if (signal?.aborted) throw new AbortedError(what, { cause: signal.reason });
      const registry = url.host;
      if (err instanceof TransportError && isTlsTrustError(err.cause)) {
        throw new RegistryError(
          registry,
          "tls",
          `${what}: the token service's certificate is not trusted; give its CA (the ca option)`,
          {
            cause: err,
          },
        );
      }
      throw new RegistryError(registry, "unreachable", `${what}: ${(err as Error).message}`, { cause: err });
    }
  }
}

function isRetryable(err: unknown): boolean {
  if (err instanceof RetryableStatus) return true;
  if (err instanceof TransportError) {
    if (isTlsTrustError(err.cause)) return false;
    // A name that does not resolve stays unresolved; a busy resolver (EAI_AGAIN) may recover.
    return err.code !== "ENOTFOUND";
  }
  return false;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Retry-After in ms: seconds, or an HTTP date. */
function retryAfter(headers: IncomingHttpHeaders): number | undefined {
  const v = headerValue(headers["retry-after"]);
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** The registry's own error words (`{"errors":[{"code","message","detail"}]}`), short. */
async function errorDetail(res: IncomingMessage): Promise<string> {
  let body: Buffer;
  try {
    body = await readBody(res, 64 * 1024);
  } catch {
    return "";
  }
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { errors?: { code?: string; message?: string }[] };
    const first = parsed.errors?.[0];
    if (first) return `: ${[first.code, first.message].filter(Boolean).join(" ")}`;
  } catch {
    // not the registry's JSON
  }
  const text = body.toString("utf8").trim().slice(0, 200);
  return text ? `: ${text}` : "";
}
