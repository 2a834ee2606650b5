import { describe, expect, it } from "vitest";
import { TailBuffer } from "./tail-buffer.js";

describe("TailBuffer", () => {
  it("keeps everything while under the limit", () => {
    const t = new TailBuffer(10);
    t.push("abc");
    t.push(Buffer.from("def"));
    expect(t.text()).toBe("abcdef");
    expect(t.totalBytes).toBe(6);
    expect(t.droppedBytes).toBe(0);
  });

  it("keeps exactly the last `limit` bytes across chunk boundaries, and counts the rest", () => {
    const t = new TailBuffer(5);
    for (const c of ["0123", "4567", "89"]) t.push(c);
    expect(t.text()).toBe("56789");
    expect(t.totalBytes).toBe(10);
    expect(t.droppedBytes).toBe(5);
    t.push("X");
    expect(t.text()).toBe("6789X");
  });

  it("cuts inside one large chunk", () => {
    const t = new TailBuffer(4);
    t.push(`${"a".repeat(100)}tail`);
    expect(t.text()).toBe("tail");
    expect(t.droppedBytes).toBe(100);
  });

  it("holds a bounded number of bytes however much is pushed", () => {
    const t = new TailBuffer(1024);
    for (let i = 0; i < 10_000; i++) t.push(Buffer.alloc(100, i % 256));
    expect(t.bytes().length).toBe(1024);
    expect(t.totalBytes).toBe(1_000_000);
  });

  it("with limit 0 keeps nothing and still counts", () => {
    const t = new TailBuffer(0);
    t.push("abc");
    expect(t.bytes().length).toBe(0);
    expect(t.droppedBytes).toBe(3);
  });

  it("refuses a limit that is not a byte count", () => {
    expect(() => new TailBuffer(-1)).toThrow(RangeError);
    expect(() => new TailBuffer(1.5)).toThrow(RangeError);
  });
});
