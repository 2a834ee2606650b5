import { describe, expect, it } from "vitest";
import { ShellWordsError, splitShellWords } from "./shell-words.js";

describe("splitShellWords (compose's string command)", () => {
  it.each([
    ["echo hello world", ["echo", "hello", "world"]],
    ["  spaced\t\tout \n lines ", ["spaced", "out", "lines"]],
    ["sh -c 'echo the $V is $W > /out/r.txt'", ["sh", "-c", "echo the $V is $W > /out/r.txt"]],
    [`echo "a \\"quoted\\" \\$HOME \\\\ \\n"`, ["echo", 'a "quoted" $HOME \\ \\n']],
    ["echo a\\ b c\\'d", ["echo", "a b", "c'd"]],
    ["echo ''", ["echo", ""]],
    [`echo "" x`, ["echo", "", "x"]],
    ["pre'fix'\"mid\"post", ["prefixmidpost"]],
    ["echo $HOME `id` * ~ #not-a-comment", ["echo", "$HOME", "`id`", "*", "~", "#not-a-comment"]],
    ["echo 'it'\"'\"'s'", ["echo", "it's"]],
    ["a \\\nb", ["a", "b"]],
    ["", []],
  ])("%j", (text, words) => {
    expect(splitShellWords(text)).toEqual(words);
  });

  it.each([
    ["echo 'open", "unterminated single quote", 5],
    ['echo "open', "unterminated double quote", 5],
    ["echo trailing\\", "a backslash ends the command", 13],
    ["echo hi > out.txt", 'unquoted ">"', 8],
    ["a | b", 'unquoted "|"', 2],
    ["a; b", 'unquoted ";"', 1],
    ["a && b", 'unquoted "&"', 2],
  ])("refuses %j", (text, message, offset) => {
    let caught: unknown;
    try {
      splitShellWords(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ShellWordsError);
    expect((caught as ShellWordsError).message).toContain(message);
    expect((caught as ShellWordsError).offset).toBe(offset);
  });

  it("passes quoted operators as arguments", () => {
    expect(splitShellWords(`echo '>' "|" \\;`)).toEqual(["echo", ">", "|", ";"]);
  });
});
