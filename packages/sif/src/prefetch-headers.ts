import { type ArchiveLimits, LayerBudget, type TarHeader } from "@contexec/core";
import type { LayerSource } from "./layer-source.js";

export interface PrefetchedLayers {
  /** The same layers, whose readHeaders() gives what was read ahead. */
  layers: LayerSource[];
  /** Stops every read still running (after a failure elsewhere). */
  cancel(): void;
}

/**
 * Reads the headers of up to `limit` layers at once, in the order the planning pass asks for
 * them (top layer first), so that layers from a slow source (a registry) download side by side
 * while the planner works through them one by one. Each layer's headers are kept in memory
 * until the planner takes them (a record per entry, as the plan keeps anyway); file data is
 * never kept. The reads ahead share one budget of `limits` (the one the planner would keep), so
 * a decompression bomb stops while it is read ahead, with the same error. With `limit` 1 the
 * layers are returned as they are.
 */
export function prefetchHeaders(
  layers: readonly LayerSource[],
  limit: number,
  limits?: Partial<ArchiveLimits>,
): PrefetchedLayers {
  if (limit <= 1 || layers.length <= 1) return { layers: [...layers], cancel: () => {} };
  const budget = new LayerBudget(limits);
  const order = layers.map((_, i) => layers.length - 1 - i);
  const reads = new Map<number, Promise<TarHeader[]>>();
  let cancelled = false;
  let next = 0;
  let running = 0;
  const start = (index: number): Promise<TarHeader[]> => {
    let read = reads.get(index);
    if (read) return read;
    running++;
    read = (async () => {
      const headers: TarHeader[] = [];
      const iterator = (layers[index] as LayerSource).readHeaders({ budget });
      try {
        for await (const header of iterator) {
          if (cancelled) break;
          headers.push(header);
        }
      } finally {
        running--;
        fill();
      }
      return headers;
    })();
    // Failures surface when the planner asks for this layer; a cancelled run may never ask.
    read.catch(() => {});
    reads.set(index, read);
    return read;
  };
  const fill = () => {
    while (!cancelled && running < limit && next < order.length) start(order[next++] as number);
  };
  fill();
  return {
    // The budget was taken while reading ahead: the planner's is not taken again.
    layers: layers.map(
      (layer, index): LayerSource => ({
        ...layer,
        readHeadersSync: undefined,
        async *readHeaders() {
          yield* await start(index);
        },
      }),
    ),
    cancel: () => {
      cancelled = true;
    },
  };
}
