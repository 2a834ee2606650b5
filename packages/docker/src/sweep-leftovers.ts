import { hostIdentity, OWNER_LABELS, ownerFromLabels, ownerLiveness, type SweepReport } from "@contexec/core";
import type Dockerode from "dockerode";
import { LABEL_MANAGED } from "./render-create-options.js";

/**
 * Removes the containers contexec made for processes of this host that have died (their owner
 * labels name a pid whose start time no longer matches, or a boot before the last one): what a
 * SIGKILLed program left running. Containers of live owners, of other hosts (a daemon shared by
 * several machines) and without owner labels are never touched. What `contexec gc` calls; every
 * Docker executor runs it once before it creates its first container.
 */
export async function sweepLeftovers(docker: Dockerode): Promise<SweepReport> {
  const report: SweepReport = { removed: [], failed: [] };
  const { host } = hostIdentity();
  const candidates = await docker.listContainers({
    all: true,
    filters: { label: [`${LABEL_MANAGED}=true`, `${OWNER_LABELS.host}=${host}`] },
  });
  for (const c of candidates) {
    const owner = ownerFromLabels(c.Labels);
    if (!owner || (await ownerLiveness(owner)) !== "dead") continue;
    const what = `container ${c.Id.slice(0, 12)} (${c.State}; owner pid ${owner.pid} on ${owner.host}, dead)`;
    try {
      await docker.getContainer(c.Id).remove({ force: true, v: true });
      report.removed.push(what);
    } catch (err) {
      // Gone meanwhile (another sweep, its own AutoRemove) is as good as removed.
      if ((err as { statusCode?: number }).statusCode === 404) report.removed.push(what);
      else report.failed.push(`${what}: ${(err as Error).message}`);
    }
  }
  return report;
}
