import { Writable } from "node:stream";
import type { PullProgress } from "@contexec/core";
import { describe, expect, it } from "vitest";
import { formatLayerLine, PullLayers, PullProgressBoard, shortLayer } from "./pull-progress.js";

const MiB = 1024 ** 2;
const DIGEST = `sha256:${"ab12".repeat(16)}`;

/** A stream that keeps what is written, as a terminal or a log file would receive it. */
function captured(tty: boolean): { out: NodeJS.WriteStream; text(): string } {
  let text = "";
  const out = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(out, { isTTY: tty, columns: 100 });
  return { out, text: () => text };
}

describe("pull progress per layer", () => {
  it("names a layer by 12 hex digits, as Docker's daemon does", () => {
    expect(shortLayer(DIGEST)).toBe("ab12ab12ab12");
    // Docker's progress lines name layers by their short id already.
    expect(shortLayer("0123456789ab")).toBe("0123456789ab");
  });

  it.each([
    [{ layer: DIGEST, phase: "waiting", bytes: 0, total: 30 * MiB }, "ab12ab12ab12  waiting"],
    [
      { layer: DIGEST, phase: "downloading", bytes: 12 * MiB, total: 30 * MiB },
      "ab12ab12ab12  downloading  [########............]  40%  12.0 MiB / 30.0 MiB",
    ],
    [
      { layer: DIGEST, phase: "downloading", bytes: 5 * MiB, total: undefined },
      "ab12ab12ab12  downloading  5.00 MiB",
    ],
    [
      { layer: DIGEST, phase: "extracting", bytes: 30 * MiB, total: 30 * MiB },
      "ab12ab12ab12  extracting   [####################] 100%  30.0 MiB / 30.0 MiB",
    ],
    [{ layer: DIGEST, phase: "done", bytes: 0, total: 30 * MiB }, "ab12ab12ab12  done         30.0 MiB"],
    [{ layer: DIGEST, phase: "exists", bytes: 0, total: undefined }, "ab12ab12ab12  already here"],
  ] as const)("formats %o", (state, line) => {
    expect(formatLayerLine(state, 200)).toBe(line);
  });

  it("cuts a line to the terminal's width", () => {
    const line = formatLayerLine({ layer: DIGEST, phase: "downloading", bytes: 1, total: 2 }, 30);
    expect(line).toHaveLength(30);
  });

  it("keeps a layer's size from an earlier event and says when its phase changed", () => {
    const layers = new PullLayers();
    expect(layers.take({ layer: "a", phase: "waiting", bytes: 0, totalBytes: 10 }).changed).toBe(true);
    expect(layers.take({ layer: "a", phase: "downloading", bytes: 4 }).state.total).toBe(10);
    expect(layers.take({ layer: "a", phase: "downloading", bytes: 8 }).changed).toBe(false);
    layers.take({ layer: "b", phase: "exists", bytes: 0 });
    expect(layers.states.map((s) => `${s.layer} ${s.phase} ${s.bytes}`)).toEqual([
      "a downloading 8",
      "b exists 0",
    ]);
  });

  it("writes a line per phase change to a log, and redraws the layers in place on a terminal", () => {
    const events: PullProgress[] = [
      { layer: "aaaaaaaaaaaa", phase: "waiting", bytes: 0, totalBytes: 100 },
      { layer: "bbbbbbbbbbbb", phase: "exists", bytes: 0 },
      { layer: "aaaaaaaaaaaa", phase: "downloading", bytes: 50, totalBytes: 100 },
      { layer: "aaaaaaaaaaaa", phase: "downloading", bytes: 100, totalBytes: 100 },
      { layer: "aaaaaaaaaaaa", phase: "done", bytes: 0, totalBytes: 100 },
    ];
    const log = captured(false);
    const board = new PullProgressBoard(log.out);
    for (const e of events) board.update(e);
    board.finish();
    expect(log.text()).toBe(
      [
        "aaaaaaaaaaaa  waiting",
        "bbbbbbbbbbbb  already here",
        "aaaaaaaaaaaa  downloading  [##########..........]  50%  50 B / 100 B",
        "aaaaaaaaaaaa  done         100 B",
        "",
      ].join("\n"),
    );

    const tty = captured(true);
    const live = new PullProgressBoard(tty.out);
    for (const e of events) live.update(e);
    live.finish();
    const ESC = String.fromCharCode(27);
    const draws = tty.text().split(new RegExp(`(?=${ESC}\\[\\d+A)`));
    // Every draw after the first moves up over the lines drawn before, then rewrites them all.
    expect(draws[0]).toBe("\raaaaaaaaaaaa  waiting\x1b[K\n");
    expect(draws.at(-1)).toBe(
      "\x1b[2A\raaaaaaaaaaaa  done         100 B\x1b[K\n\rbbbbbbbbbbbb  already here\x1b[K\n",
    );
  });
});
