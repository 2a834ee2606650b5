/** One variable of an env file, with the line it came from (1-based). */
export interface EnvFileEntry {
  name: string;
  /** Undefined for a bare `NAME` line: the value comes from the host environment, if set there. */
  value: string | undefined;
  line: number;
}

export interface EnvFileIssue {
  line: number;
  col: number;
  message: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const DOUBLE_ESCAPES: Record<string, string> = { n: "\n", t: "\t", r: "\r", '"': '"', "\\": "\\", $: "$" };

/**
 * Reads an env file as compose does: `NAME=value` lines (an `export ` prefix is allowed), `#`
 * comment lines and blank lines skipped; a value may be single-quoted (literal), double-quoted
 * (`\n`, `\t`, `\"`, `\\` understood; may span lines) or bare (trimmed; ` #` starts a comment).
 * A bare `NAME` line takes the host's value. `${VAR}` is not interpolated: values are literal.
 */
export function parseEnvFile(text: string): { entries: EnvFileEntry[]; issues: EnvFileIssue[] } {
  const entries: EnvFileEntry[] = [];
  const issues: EnvFileIssue[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string;
    const lineNo = i + 1;
    const trimmed = raw.trimStart();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const indent = raw.length - trimmed.length;
    const body = trimmed.startsWith("export ") ? trimmed.slice(7).trimStart() : trimmed;
    const bodyCol = indent + (trimmed.length - body.length) + 1;
    const eq = body.indexOf("=");
    const name = (eq < 0 ? body : body.slice(0, eq)).trim();
    if (!NAME.test(name)) {
      issues.push({
        line: lineNo,
        col: bodyCol,
        message: `"${name}" is not a variable name (NAME=value expected)`,
      });
      continue;
    }
    if (eq < 0) {
      entries.push({ name, value: undefined, line: lineNo });
      continue;
    }
    let rest = body.slice(eq + 1).trimStart();
    const valueCol = bodyCol + body.length - rest.length;
    const quote = rest[0];
    if (quote === "'" || quote === '"') {
      // A quoted value may continue on the following lines until its closing quote.
      let value = "";
      let j = 1;
      let closed = false;
      let lineIndex = i;
      for (;;) {
        while (j < rest.length) {
          const c = rest[j] as string;
          if (c === quote) {
            closed = true;
            break;
          }
          if (quote === '"' && c === "\\" && j + 1 < rest.length) {
            const next = rest[j + 1] as string;
            value += DOUBLE_ESCAPES[next] ?? `\\${next}`;
            j += 2;
            continue;
          }
          value += c;
          j++;
        }
        if (closed || lineIndex + 1 >= lines.length) break;
        lineIndex++;
        value += "\n";
        rest = lines[lineIndex] as string;
        j = 0;
      }
      if (!closed) {
        issues.push({ line: lineNo, col: valueCol, message: `unterminated ${quote} quote` });
        break;
      }
      const after = rest.slice(j + 1).trim();
      if (after !== "" && !after.startsWith("#")) {
        issues.push({
          line: lineIndex + 1,
          col: 1,
          message: `unexpected text after the closing quote: ${after}`,
        });
      }
      entries.push({ name, value, line: lineNo });
      i = lineIndex;
      continue;
    }
    const comment = rest.search(/\s#/);
    entries.push({ name, value: (comment >= 0 ? rest.slice(0, comment) : rest).trim(), line: lineNo });
  }
  return { entries, issues };
}
