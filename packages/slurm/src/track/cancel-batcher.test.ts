import { describe, expect, it } from "vitest";
import { scancelArgs } from "./cancel-batcher.js";

describe("scancelArgs", () => {
  it("cancels whole jobs, only waiting ones, or signals the batch shell", () => {
    expect(scancelArgs({ kind: "cancel" }, ["1", "2"])).toEqual(["1", "2"]);
    expect(scancelArgs({ kind: "cancel-pending" }, ["3"])).toEqual(["--state=PENDING", "3"]);
    expect(scancelArgs({ kind: "signal", signal: "SIGTERM" }, ["4", "5"])).toEqual([
      "--batch",
      "--signal=TERM",
      "4",
      "5",
    ]);
    expect(scancelArgs({ kind: "signal", signal: "KILL" }, ["6"])).toEqual(["--batch", "--signal=KILL", "6"]);
  });
});
