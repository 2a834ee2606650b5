import type { PullPhase, PullProgress } from "@contexec/core";
import { formatBytes } from "./progress-line.js";

/** A layer as shown: 12 hex digits of its digest, as Docker shows them (its daemon's ids already are). */
export function shortLayer(layer: string): string {
  return layer.replace(/^sha256:/, "").slice(0, 12);
}

/** What is known of one layer of a pull. */
export interface LayerState {
  layer: string;
  phase: PullPhase;
  bytes: number;
  total: number | undefined;
}

const PHASE_WORDS: Record<PullPhase, string> = {
  waiting: "waiting",
  downloading: "downloading",
  extracting: "extracting",
  done: "done",
  exists: "already here",
};

/**
 * One layer's line: `a1b2c3d4e5f6  downloading  [######......]  45%  12.1 MiB / 27.0 MiB`, cut to
 * `width`. The bar only while bytes move (downloading, extracting) and the size is known.
 */
export function formatLayerLine(s: LayerState, width: number): string {
  const head = `${shortLayer(s.layer)}  ${PHASE_WORDS[s.phase].padEnd(11)}`;
  const moving = s.phase === "downloading" || s.phase === "extracting";
  let tail = "";
  if (moving && s.total) {
    const fraction = Math.min(1, s.bytes / s.total);
    const filled = Math.round(fraction * 20);
    tail = `  [${"#".repeat(filled)}${".".repeat(20 - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ${formatBytes(s.bytes)} / ${formatBytes(s.total)}`;
  } else if (moving) {
    tail = `  ${formatBytes(s.bytes)}`;
  } else if (s.total !== undefined && s.phase !== "waiting") {
    tail = `  ${formatBytes(s.total)}`;
  }
  const line = `${head}${tail}`.trimEnd();
  return line.length > width ? line.slice(0, Math.max(0, width)) : line;
}

/** The layers of a pull, in the order they were first reported, from its progress events. */
export class PullLayers {
  readonly #layers = new Map<string, LayerState>();

  /** Takes one event; returns the layer's state, and whether its phase changed. */
  take(p: PullProgress): { state: LayerState; changed: boolean } {
    const previous = this.#layers.get(p.layer);
    const state: LayerState = {
      layer: p.layer,
      phase: p.phase,
      bytes: p.bytes,
      total: p.totalBytes ?? previous?.total,
    };
    this.#layers.set(p.layer, state);
    return { state, changed: previous?.phase !== p.phase };
  }

  get states(): LayerState[] {
    return [...this.#layers.values()];
  }
}

/**
 * Shows a pull's progress per layer on a stream: on a terminal, one line per layer redrawn in
 * place (at most 10 times a second), as `docker pull` shows it; otherwise a line each time a
 * layer changes phase, so logs stay readable.
 */
export class PullProgressBoard {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #layers = new PullLayers();
  #drawnLines = 0;
  #lastDraw = 0;

  constructor(out: NodeJS.WriteStream, options: { tty?: boolean } = {}) {
    this.#out = out;
    this.#tty = options.tty ?? out.isTTY === true;
  }

  update(p: PullProgress): void {
    const { state, changed } = this.#layers.take(p);
    if (!this.#tty) {
      if (changed) this.#out.write(`${formatLayerLine(state, 200)}\n`);
      return;
    }
    const now = Date.now();
    if (!changed && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    this.#draw();
  }

  #draw(): void {
    const width = (this.#out.columns ?? 80) - 1;
    const lines = this.#layers.states.map((s) => formatLayerLine(s, width));
    const up = this.#drawnLines > 0 ? `\x1b[${this.#drawnLines}A` : "";
    this.#out.write(`${up}${lines.map((l) => `\r${l}\x1b[K\n`).join("")}`);
    this.#drawnLines = lines.length;
  }

  /** Draws the final state (a terminal). */
  finish(): void {
    if (this.#tty && this.#layers.states.length > 0) this.#draw();
  }
}
