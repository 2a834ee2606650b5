import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { InvalidSpecError } from "./errors.js";
import { shellJoin, shellQuote } from "./shell-quote.js";

const HOSTILE = [
  "",
  " ",
  "plain",
  "it's",
  "'",
  "''",
  '"double" quotes',
  "$(touch /tmp/contexec-quote-pwned)",
  "`id`",
  "${HOME}",
  "$HOME",
  "a\nb\n",
  "tab\there",
  "*",
  "/*/*",
  "?",
  "[a-z]",
  "{a,b}",
  "~",
  "~root",
  "-n",
  "--help",
  "-e\\n",
  "back\\slash",
  "semi;colon && or || pipe | amp & lt < gt >",
  "!bang !!",
  "#comment",
  "A=b",
  "%s %d",
  "ünïcödé ✓ 🐳",
  "\u0001\u001b[31mcolour",
];

/** Runs `printf '%s\0' WORDS` in a real shell and splits what it printed. */
function roundTrip(shell: string, words: string[]): string[] {
  const out = execFileSync(shell, ["-c", `printf '%s\\0' ${shellJoin(words)}`], { encoding: "utf8" });
  return out.split("\0").slice(0, -1);
}

describe("shellQuote", () => {
  for (const shell of ["bash", "sh", "busybox"]) {
    const argv0 = shell === "busybox" ? "busybox" : shell;
    const missing = !hasProgram(argv0);
    it.skipIf(missing)(
      `every hostile word reads back exactly in ${shell}${missing ? ` (skipped: no ${argv0} on PATH)` : ""}`,
      () => {
        const words = HOSTILE;
        const got =
          shell === "busybox"
            ? execFileSync("busybox", ["sh", "-c", `printf '%s\\0' ${shellJoin(words)}`], {
                encoding: "utf8",
              })
                .split("\0")
                .slice(0, -1)
            : roundTrip(shell, words);
        expect(got).toEqual(words);
      },
    );
  }

  it("leaves plain words bare and quotes everything else", () => {
    expect(shellQuote("/usr/bin/apptainer")).toBe("/usr/bin/apptainer");
    expect(shellQuote("--pwd")).toBe("--pwd");
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("A=b")).toBe("'A=b'");
    expect(shellQuote("it's")).toBe(`'it'"'"'s'`);
  });

  it("refuses a NUL byte and invalid Unicode, naming the value", () => {
    expect(() => shellQuote("a\0b", "command[1]")).toThrow(InvalidSpecError);
    expect(() => shellQuote("a\0b", "command[1]")).toThrow(/command\[1\].*NUL/);
    expect(() => shellQuote("bad \uD800 half", "env.X")).toThrow(/env\.X.*Unicode/);
    expect(() => shellQuote("bad \uDC00")).toThrow(InvalidSpecError);
    expect(shellQuote("ok 🐳")).toBe("'ok 🐳'");
  });
});

function hasProgram(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
