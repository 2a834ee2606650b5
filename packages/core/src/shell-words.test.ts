import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { parseShellWords, type ShellToken } from "./shell-words.js";

/** Python's `shlex.quote`, as singreqrun's client quotes each argument (bare when safe, else '...'). */
function pyQuote(s: string): string {
  if (s === "") return "''";
  if (!/[^\w@%+=:,./-]/.test(s)) return s;
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}
/** The C client's quoting: every argument single-quoted, each followed by a space. */
function cQuote(args: string[]): string {
  return args.map((a) => `'${a.replaceAll("'", `'"'"'`)}' `).join("");
}
const words = (text: string) => {
  const r = parseShellWords(text, { operators: ["&&"] });
  if (!r.ok) throw new Error(r.reason);
  return r.tokens.map((t: ShellToken) => (t.kind === "word" ? t.value : `<${t.value}>`));
};
/** How bash itself splits the line: the words printed NUL-separated. */
const bashWords = (line: string) =>
  execFileSync("bash", ["-c", `set -f; printf '%s\\0' ${line}`], { encoding: "utf8" })
    .split("\0")
    .slice(0, -1);

const HOSTILE = [
  "plain",
  "with space",
  "it's",
  "'",
  "''",
  '"double"',
  "$(touch /tmp/pwned)",
  "`id`",
  "$HOME $((1+1))",
  "a;b|c&d",
  "line1\nline2\n",
  "tab\there",
  "back\\slash",
  "*?[glob]",
  "~root",
  "#comment",
  "!bang",
  "ünïcødé ✓ 日本語",
  "-e",
  "--format=%i %j",
  "",
  "a'b\"c$d`e\\f",
];

describe("parseShellWords", () => {
  it("reads back every argument quoted the way Python's shlex.quote does, as bash does", () => {
    const line = HOSTILE.map(pyQuote).join(" ");
    expect(words(line)).toEqual(HOSTILE);
    expect(bashWords(line)).toEqual(HOSTILE);
  });

  it("reads the C client's form: all single-quoted, a trailing space, a `cd DIR &&` prefix", () => {
    const line = `cd /home/u/dir && ${cQuote(["squeue", ...HOSTILE])}`;
    expect(words(line)).toEqual(["cd", "/home/u/dir", "<&&>", "squeue", ...HOSTILE]);
  });

  it("accepts double-quoted parts without expansions and joins adjacent parts into one word", () => {
    expect(words(`"a b"'c d'e "it's"`)).toEqual(["a bc de", "it's"]);
    expect(words(`a""b ''`)).toEqual(["ab", ""]);
  });

  it("accepts trailing whitespace and newlines, but no second command", () => {
    expect(words("squeue --me \n\n")).toEqual(["squeue", "--me"]);
    const r = parseShellWords("squeue\nrm -rf /");
    expect(r).toMatchObject({ ok: false });
    if (!r.ok) expect(r.reason).toMatch(/newline outside quotes at offset 6 starts another command/);
  });

  it.each([
    ["squeue; rm -rf /", /";" \(a command separator\)/],
    ["squeue | tee x", /"\|" \(a pipe\)/],
    ["squeue > /etc/passwd", /">" \(a redirection\)/],
    ["squeue < x", /"<" \(a redirection\)/],
    ["echo $(id)", /"\$" \(an expansion\)/],
    ["echo `id`", /"`" \(a command substitution\)/],
    ["echo $HOME", /"\$" \(an expansion\)/],
    ['echo "$HOME"', /"\$" \(an expansion\) inside double quotes/],
    ['echo "a\\"b"', /"\\" \(an escape\) inside double quotes/],
    ["ls *", /"\*" \(a glob\)/],
    ["ls a?", /"\?" \(a glob\)/],
    ["ls [ab]", /"\[" \(a glob\)/],
    ["ls ~", /"~" \(a tilde expansion\)/],
    ["echo {a,b}", /"\{" \(a group or brace expansion\)/],
    ["(id)", /"\(" \(a subshell\)/],
    ["sleep 1 &", /"&" \(a background or list operator\)/],
    ["a && b", /"&&" at offset 2 joins commands/],
    ["a&&b", /"&" \(a background or list operator\)/],
    ["# comment", /"#" \(a comment\)/],
    ["! true", /"!" \(a negation\)/],
    ["echo a\\ b", /"\\" \(an escape\) outside quotes/],
    ["echo 'open", /single quote at offset 5 is never closed/],
    ['echo "open', /double quote at offset 5 is never closed/],
    ["echo ünï", /U\+00FC outside quotes/],
    ["echo 'a\0b'", /NUL byte at offset 7/],
  ])("refuses %j with a reason", (line, reason) => {
    const r = parseShellWords(line);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(reason);
      expect(r.reason).not.toContain("\n");
    }
  });

  it("gives tokens for an empty line and for operators only when allowed", () => {
    expect(parseShellWords("   ")).toEqual({ ok: true, tokens: [] });
    expect(parseShellWords("cd /x && id", { operators: ["&&"] })).toEqual({
      ok: true,
      tokens: [
        { kind: "word", value: "cd" },
        { kind: "word", value: "/x" },
        { kind: "operator", value: "&&" },
        { kind: "word", value: "id" },
      ],
    });
    expect(parseShellWords("cd /x &&id", { operators: ["&&"] }).ok).toBe(false);
  });
});
