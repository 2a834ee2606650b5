import type { IncomingHttpHeaders } from "node:http";
import { RegistryAuthError, type RegistryCredentials } from "@contexec/core";
import type { ResolvedCredentials } from "./docker-config.js";
import type { AuthChallenge } from "./www-authenticate.js";

/** A request to a token service, with retries on transient failures; any status comes back. */
export type TokenRequest = (
  url: URL,
  init: { method: "GET" | "POST"; headers: Record<string, string>; body?: Buffer },
  signal: AbortSignal | undefined,
) => Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>;

interface Token {
  header: string;
  expiresAt: number;
}

// A token this close to its end is not sent again.
const EXPIRY_MARGIN_MS = 5_000;

/**
 * The credentials side of one registry for one client: learns the scheme from the first 401
 * (Basic, or Bearer with a token service), then sends credentials with every request. Bearer
 * tokens are kept per scope until they expire, and concurrent requests for one scope share one
 * token request. Refused credentials are a {@link RegistryAuthError} at once: a wrong password
 * costs the request that met the challenge and one more, never a retry loop.
 */
export class RegistryAuthenticator {
  readonly #registry: string;
  readonly #resolve: () => Promise<ResolvedCredentials>;
  readonly #request: TokenRequest;
  #credentials: Promise<ResolvedCredentials> | undefined;
  #basic: string | undefined;
  readonly #tokens = new Map<string, Token>();
  readonly #pending = new Map<string, Promise<Token>>();

  constructor(registry: string, resolve: () => Promise<ResolvedCredentials>, request: TokenRequest) {
    this.#registry = registry;
    this.#resolve = resolve;
    this.#request = request;
  }

  /** The Authorization header to send for `scope` before any challenge, if one is known. */
  headerFor(scope: string): string | undefined {
    if (this.#basic) return this.#basic;
    const token = this.#tokens.get(scope);
    if (token && token.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return token.header;
    return undefined;
  }

  /**
   * Answers a 401: the header to send next, or RegistryAuthError when the credentials were
   * refused (`sent` is the header the registry refused), are missing, or cannot meet the challenge.
   */
  async respond(
    challenges: readonly AuthChallenge[],
    scope: string,
    sent: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    const resolved = await this.#credentialsOnce();
    if (bearer) {
      const fresh = this.#tokens.get(scope);
      if (sent !== undefined && fresh?.header === sent && fresh.expiresAt - EXPIRY_MARGIN_MS > Date.now()) {
        const error = bearer.params.error ? ` (${bearer.params.error})` : "";
        throw new RegistryAuthError(
          this.#registry,
          `the registry refused a token just issued for ${scope}${error}: ${this.#who(resolved)} may not access it`,
          { status: 401 },
        );
      }
      let pending = this.#pending.get(scope);
      if (!pending) {
        pending = this.#fetchToken(bearer, scope, resolved, signal);
        this.#pending.set(scope, pending);
        pending.finally(() => this.#pending.delete(scope)).catch(() => {});
      }
      const token = await pending;
      this.#tokens.set(scope, token);
      return token.header;
    }
    if (basic) {
      const c = resolved.credentials;
      if (!c || !("username" in c))
        throw this.#needsCredentials(resolved, "a user name and password (Basic)");
      const header = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
      if (sent === header) {
        throw new RegistryAuthError(
          this.#registry,
          `the registry refused the user name and password of ${this.#who(resolved)}; check them (or log in again)`,
          { status: 401 },
        );
      }
      this.#basic = header;
      return header;
    }
    const schemes = challenges.map((c) => c.scheme).join(", ") || "none";
    throw new RegistryAuthError(
      this.#registry,
      `the registry asks for authentication this client does not speak (challenge schemes: ${schemes}); Basic and Bearer are supported`,
      { status: 401 },
    );
  }

  #credentialsOnce(): Promise<ResolvedCredentials> {
    this.#credentials ??= this.#resolve();
    return this.#credentials;
  }

  async #fetchToken(
    challenge: AuthChallenge,
    scope: string,
    resolved: ResolvedCredentials,
    signal: AbortSignal | undefined,
  ): Promise<Token> {
    const c = resolved.credentials;
    if (c && "registryToken" in c)
      return { header: `Bearer ${c.registryToken}`, expiresAt: Number.POSITIVE_INFINITY };
    const realm = challenge.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? "");
    } catch {
      throw new RegistryAuthError(
        this.#registry,
        `the registry's Bearer challenge names no usable token service (realm ${JSON.stringify(realm ?? null)})`,
      );
    }
    const service = challenge.params.service;
    // The registry's own scope wins: it may ask for more than this request needed.
    const scopes = (challenge.params.scope ?? scope).split(" ").filter(Boolean);
    let response: Awaited<ReturnType<TokenRequest>>;
    if (c && "identityToken" in c) {
      // OAuth2 refresh-token grant, as Docker sends an identity token.
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: c.identityToken,
        client_id: "contexec",
      });
      if (service) form.set("service", service);
      form.set("scope", scopes.join(" "));
      response = await this.#request(
        url,
        {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: Buffer.from(form.toString()),
        },
        signal,
      );
    } else {
      if (service) url.searchParams.set("service", service);
      for (const s of scopes) url.searchParams.append("scope", s);
      const headers: Record<string, string> = {};
      if (c && "username" in c) {
        headers.authorization = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
        url.searchParams.set("account", c.username);
      }
      response = await this.#request(url, { method: "GET", headers }, signal);
    }
    if (response.status === 401 || response.status === 403) {
      if (!c) throw this.#needsCredentials(resolved, "credentials");
      throw new RegistryAuthError(
        this.#registry,
        `the token service ${url.origin}${url.pathname} refused the credentials of ${this.#who(resolved)} (HTTP ${response.status}); check them (or log in again)`,
        { status: response.status },
      );
    }
    if (response.status !== 200) {
      throw new RegistryAuthError(
        this.#registry,
        `the token service ${url.origin}${url.pathname} answered HTTP ${response.status}: ${response.body.toString("utf8").slice(0, 200)}`,
        { status: response.status },
      );
    }
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(response.body.toString("utf8"));
    } catch (err) {
      throw new RegistryAuthError(
        this.#registry,
        `the token service ${url.origin} answered something that is not JSON`,
        {
          cause: err,
        },
      );
    }
    const token = typeof parsed.token === "string" ? parsed.token : parsed.access_token;
    if (typeof token !== "string" || token === "") {
      throw new RegistryAuthError(this.#registry, `the token service ${url.origin} answered without a token`);
    }
    // The distribution spec's default lifetime is 60 s when none is given.
    const seconds = typeof parsed.expires_in === "number" && parsed.expires_in > 0 ? parsed.expires_in : 60;
    return { header: `Bearer ${token}`, expiresAt: Date.now() + seconds * 1000 };
  }

  #who(resolved: ResolvedCredentials): string {
    const c = resolved.credentials;
    const user = c && "username" in c ? `user "${c.username}"` : c ? "the token" : "anonymous access";
    return resolved.from ? `${user} (from ${resolved.from})` : user;
  }

  #needsCredentials(resolved: ResolvedCredentials, what: string): RegistryAuthError {
    const problem = resolved.problem ? ` (${resolved.problem})` : "";
    return new RegistryAuthError(
      this.#registry,
      `the registry needs ${what} and none were given${problem}: pass auth, or run \`docker login ${this.#registry}\``,
      { status: 401 },
    );
  }
}

/** The credentials as a header value source, for callers that have them at hand. */
export function credentialsResolver(
  credentials: RegistryCredentials | undefined,
  from: string,
): () => Promise<ResolvedCredentials> {
  return async () => ({ credentials, from: credentials ? from : undefined });
}
