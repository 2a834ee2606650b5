import { appendFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collect } from "@contexec/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileFollower } from "./file-follower.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "contexec-follower-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("FileFollower", () => {
  it("streams a file as another writer appends to it, then ends with exactly its content", async () => {
    const path = join(dir, "grows");
    const follower = new FileFollower(path, { minIntervalMs: 10, maxIntervalMs: 50 });
    const seen: string[] = [];
    follower.on("data", (b: Buffer) => seen.push(b.toString()));
    const ended = new Promise((resolve) => follower.once("end", resolve));
    follower.follow();
    await new Promise((r) => setTimeout(r, 30)); // the file does not exist yet: no error
    await writeFile(path, "one\n");
    await waitFor(() => seen.join("") === "one\n");
    await appendFile(path, "two\n");
    await waitFor(() => seen.join("") === "one\ntwo\n");
    await appendFile(path, "three\n");
    follower.finish();
    await ended;
    expect(seen.join("")).toBe("one\ntwo\nthree\n");
  });

  it("reads large files in chunks, binary-safe, only as fast as the consumer reads", async () => {
    const path = join(dir, "large");
    const bytes = Buffer.alloc(5 * 1024 * 1024 + 7);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    await writeFile(path, bytes);
    const follower = new FileFollower(path, { chunkBytes: 64 * 1024 });
    follower.follow();
    await new Promise((r) => setTimeout(r, 50));
    // Nothing read yet: the follower holds at most its buffer, not the file.
    expect(follower.offset).toBeLessThanOrEqual(64 * 1024 * 2);
    follower.finish();
    expect((await collect(follower)).equals(bytes)).toBe(true);
  });

  it("ends at once on stop(), without reading further", async () => {
    const path = join(dir, "stopped");
    await writeFile(path, "data");
    const follower = new FileFollower(path);
    follower.stop();
    expect((await collect(follower)).length).toBe(0);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}
