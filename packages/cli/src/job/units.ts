/**
 * Values compose writes as strings: byte sizes (`512m`, `1.5g`, `2GiB`), durations (`1m30s`)
 * and CPU counts (`"0.5"`). Each parser returns undefined for text it does not accept, so the
 * caller can say what was expected, and where.
 */

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * A byte size as compose and Docker read it: a number of bytes, or a number with a unit
 * (b, k, m, g, t, optionally followed by b or ib; powers of 1024 as in Docker). Whole bytes only.
 */
export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  if (!m) return undefined;
  const unit = BYTE_UNITS[(m[2] as string).toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const DURATION_UNITS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };

/** A compose duration (`10s`, `1m30s`, `1h`, `500ms`, `2.5s`) in milliseconds; a bare number is seconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const part = /(\d+(?:\.\d+)?)(ms|us|h|m|s)/gy;
  let total = 0;
  let end = 0;
  for (let m = part.exec(text); m; m = part.exec(text)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
    end = part.lastIndex;
  }
  if (end === 0 || end !== text.length) return undefined;
  return Math.round(total);
}

/** A CPU count (`1.5`, `"0.5"`): a positive finite number. */
export function parseCpus(value: string | number): number | undefined {
  const n = typeof value === "number" ? value : /^\s*\d*\.?\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}
