import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { configDigestOf } from "@contexec/conformance";
import { type ListedEntry, listTar } from "@contexec/core/testing";
import { extract } from "tar-stream";
import { afterAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { DockerExecutor } from "./docker-executor.js";

// The conformance fixtures are written by contexec's own archive writer, never by Docker. Docker
// must read them as it reads its own: `docker load` of each, then `docker save` of what it
// loaded, gives back the same ImageId and the same layers, entry by entry.
const gate = runtimeGate("docker");
const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const executor = new DockerExecutor();
afterAll(() => executor.close());

/** The members of a docker-archive: config digest, diff ids, and each layer's entries. */
async function read(archive: Buffer) {
  const members = new Map<string, Buffer>();
  const x = extract();
  const done = (async () => {
    for await (const entry of x) {
      const chunks: Buffer[] = [];
      for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
      members.set(entry.header.name.replace(/^\.\//, ""), Buffer.concat(chunks));
    }
  })();
  x.end(archive);
  await done;
  const manifest = JSON.parse(String(members.get("manifest.json")))[0] as {
    Config: string;
    Layers: string[];
  };
  const config = JSON.parse(String(members.get(manifest.Config)));
  const layers: ListedEntry[][] = [];
  for (const name of manifest.Layers) layers.push(await listTar(members.get(name) as Buffer));
  return { diffIds: config.rootfs.diff_ids as string[], config: config.config, layers };
}

async function save(id: string): Promise<Buffer> {
  const stream = await executor.docker.getImage(id).get();
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

describe.skipIf(gate.skip)(gate.title("fixture images in Docker: load, then save"), () => {
  // The images stay loaded, as after the conformance suite: another run may be using them.
  it.each(["busybox", "layered"])("%s.tar: the same ImageId and the same layers come back", async (name) => {
    const path = join(fixtures, `${name}.tar`);
    const id = await executor.loadImage(path);
    expect(id).toBe(await configDigestOf(path));
    const saved = await save(id);
    const [ours, theirs] = await Promise.all([read(await readFile(path)), read(saved)]);
    expect(theirs.diffIds).toEqual(ours.diffIds);
    expect(theirs.config).toEqual(ours.config);
    expect(theirs.layers.length).toBe(ours.layers.length);
    for (const [i, layer] of theirs.layers.entries()) expect(layer, `layer ${i}`).toEqual(ours.layers[i]);
  });
});
