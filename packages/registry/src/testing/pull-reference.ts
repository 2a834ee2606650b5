import { randomBytes } from "node:crypto";
import { pushArchive } from "../push/push-image.js";
import { RegistryClient } from "../registry-client.js";
import type { TestRegistries } from "./test-registries.js";

/**
 * Pushes an archive to the plain test registry under a name of its own and gives its reference
 * (for the conformance suite's pullReference); undefined when there is no test registry.
 */
export async function pushForPull(
  registries: TestRegistries | null,
  archivePath: string,
  name: string,
): Promise<string | undefined> {
  if (!registries) return undefined;
  const reference = `${registries.plain.host}/conformance-${randomBytes(3).toString("hex")}/${name}:1`;
  const client = new RegistryClient({ dockerConfig: false });
  try {
    await pushArchive(client, archivePath, reference);
  } finally {
    client.close();
  }
  return reference;
}
