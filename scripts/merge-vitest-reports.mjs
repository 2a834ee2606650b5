// Merges vitest JSON reports into one, so that CI (.ci/run reads one report) counts every run:
//   node scripts/merge-vitest-reports.mjs OUT IN...   (OUT may be one of the INs; a missing or
// unreadable IN counts as one failed test: a run that wrote no report did not pass)
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const [out, ...inputs] = process.argv.slice(2);
if (!out || inputs.length === 0) {
  console.error("usage: node scripts/merge-vitest-reports.mjs OUT IN...");
  process.exit(2);
}
const reports = inputs.map((file) => {
  try {
    if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8"));
  } catch {}
  return { numFailedTests: 1, numTotalTests: 1, success: false, testResults: [], missing: file };
});
const merged = { ...reports[0], testResults: [], success: true };
for (const key of Object.keys(merged)) if (key.startsWith("num")) merged[key] = 0;
for (const r of reports) {
  for (const [key, value] of Object.entries(r)) {
    if (key.startsWith("num") && typeof value === "number") merged[key] = (merged[key] ?? 0) + value;
  }
  merged.testResults.push(...(r.testResults ?? []));
  merged.success &&= r.success === true;
  if (r.startTime !== undefined) merged.startTime = Math.min(merged.startTime ?? r.startTime, r.startTime);
  if (r.missing) console.error(`[merge-vitest-reports] ${r.missing} is missing: counted as one failed test`);
}
writeFileSync(out, JSON.stringify(merged));
