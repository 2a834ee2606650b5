import { describe, expect, it } from "vitest";
import { parseWwwAuthenticate } from "./www-authenticate.js";

describe("parseWwwAuthenticate", () => {
  it("reads Docker Hub's bearer challenge", () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/busybox:pull",
        },
      },
    ]);
  });

  it("reads the distribution registry's basic challenge (htpasswd)", () => {
    expect(parseWwwAuthenticate('Basic realm="contexec"')).toEqual([
      { scheme: "basic", params: { realm: "contexec" } },
    ]);
  });

  it("reads several challenges, token values, escapes and odd spacing", () => {
    expect(
      parseWwwAuthenticate(
        'Basic realm="a \\"b\\"" , Bearer realm=https://x/token, error="insufficient_scope"',
      ),
    ).toEqual([
      { scheme: "basic", params: { realm: 'a "b"' } },
      { scheme: "bearer", params: { realm: "https://x/token", error: "insufficient_scope" } },
    ]);
    expect(parseWwwAuthenticate("Bearer")).toEqual([{ scheme: "bearer", params: {} }]);
    expect(parseWwwAuthenticate("")).toEqual([]);
    expect(parseWwwAuthenticate('realm="x"')).toEqual([]);
  });
});
