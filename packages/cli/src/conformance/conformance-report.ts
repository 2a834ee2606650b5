/** One conformance case's outcome, as the report shows it. */
export interface CaseOutcome {
  /** The case's title path below the suite: `exit > exit code 7 is reported`. */
  name: string;
  state: "passed" | "failed" | "skipped";
  /** Why it was skipped (the backend's reason), or the failure's first line. */
  reason?: string;
  durationMs?: number;
}

export const REPORTERS = ["table", "tap", "junit"] as const;
export type ReporterName = (typeof REPORTERS)[number];

/** A case title as registered (`title (skipped: reason)`), split into its name and reason. */
export function splitSkipReason(title: string): { name: string; reason?: string } {
  const m = /^(.*) \(skipped: (.*)\)$/s.exec(title);
  return m ? { name: m[1] as string, reason: m[2] as string } : { name: title };
}

/** `N passed, N failed, N skipped`: the closing line CI readers look for. */
export function summaryLine(cases: readonly CaseOutcome[]): string {
  const count = (s: CaseOutcome["state"]) => cases.filter((c) => c.state === s).length;
  return `${count("passed")} passed, ${count("failed")} failed, ${count("skipped")} skipped`;
}

/** One line per case: state, name, and the reason when skipped or failed; then the summary. */
export function formatTable(title: string, cases: readonly CaseOutcome[]): string {
  const mark = { passed: "pass", failed: "FAIL", skipped: "skip" } as const;
  const lines = [title, ""];
  for (const c of cases) lines.push(`${mark[c.state]}  ${c.name}${c.reason ? `\n        ${c.reason}` : ""}`);
  lines.push("", summaryLine(cases));
  return `${lines.join("\n")}\n`;
}

/** TAP version 13: `ok N - name # SKIP reason`, `not ok N - name` with the failure as YAML. */
export function formatTap(cases: readonly CaseOutcome[]): string {
  const lines = ["TAP version 13", `1..${cases.length}`];
  cases.forEach((c, i) => {
    const name = c.name.replace(/#/g, "\\#");
    if (c.state === "skipped") lines.push(`ok ${i + 1} - ${name} # SKIP ${c.reason ?? ""}`.trimEnd());
    else if (c.state === "passed") lines.push(`ok ${i + 1} - ${name}`);
    else {
      lines.push(
        `not ok ${i + 1} - ${name}`,
        "  ---",
        `  message: ${JSON.stringify(c.reason ?? "failed")}`,
        "  ...",
      );
    }
  });
  lines.push(`# ${summaryLine(cases)}`);
  return `${lines.join("\n")}\n`;
}

function xml(text: string): string {
  return text
    .replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
    .replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD]/g, "");
}

/** JUnit XML, one testsuite: what CI systems read. */
export function formatJunit(suite: string, cases: readonly CaseOutcome[]): string {
  const count = (s: CaseOutcome["state"]) => cases.filter((c) => c.state === s).length;
  const seconds = (ms?: number) => ((ms ?? 0) / 1000).toFixed(3);
  const total = cases.reduce((t, c) => t + (c.durationMs ?? 0), 0);
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="contexec conformance" tests="${cases.length}" failures="${count("failed")}" skipped="${count("skipped")}" time="${seconds(total)}">`,
    `  <testsuite name="${xml(suite)}" tests="${cases.length}" failures="${count("failed")}" skipped="${count("skipped")}" time="${seconds(total)}">`,
  ];
  for (const c of cases) {
    const open = `    <testcase classname="${xml(suite)}" name="${xml(c.name)}" time="${seconds(c.durationMs)}"`;
    if (c.state === "passed") lines.push(`${open}/>`);
    else if (c.state === "skipped")
      lines.push(`${open}>`, `      <skipped message="${xml(c.reason ?? "")}"/>`, "    </testcase>");
    else lines.push(`${open}>`, `      <failure message="${xml(c.reason ?? "failed")}"/>`, "    </testcase>");
  }
  lines.push("  </testsuite>", "</testsuites>");
  return `${lines.join("\n")}\n`;
}
