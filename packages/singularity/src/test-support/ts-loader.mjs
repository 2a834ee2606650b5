// A Node module loader for child processes in this package's tests: it runs the TypeScript
// sources as they are (types stripped with TypeScript's transpileModule), maps @contexec/* to
// packages/*/src, so a test can start real Node processes on the code without a build.
// Use: node --import ./ts-loader.mjs script.ts
import { existsSync, readFileSync } from "node:fs";
import { register } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

if (!globalThis.__contexecTsLoader) {
  globalThis.__contexecTsLoader = true;
  register(import.meta.url, import.meta.url);
}

const packages = new URL("../../../", import.meta.url);

export async function resolve(specifier, context, next) {
  const m = /^@contexec\/([a-z-]+)$/.exec(specifier);
  if (m) return { url: new URL(`${m[1]}/src/index.ts`, packages).href, shortCircuit: true };
  if (specifier.endsWith(".js") && context.parentURL?.endsWith(".ts") && specifier.startsWith(".")) {
    const ts = new URL(specifier.replace(/\.js$/, ".ts"), context.parentURL);
    if (existsSync(fileURLToPath(ts))) return { url: ts.href, shortCircuit: true };
  }
  return next(specifier, context);
}

let ts;
export async function load(url, context, next) {
  if (!url.endsWith(".ts")) return next(url, context);
  ts ??= (await import("typescript")).default;
  const source = readFileSync(fileURLToPath(url), "utf8");
  const out = ts.transpileModule(source, {
    fileName: fileURLToPath(url),
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
  });
  return { format: "module", source: out.outputText, shortCircuit: true };
}

export const loaderUrl = pathToFileURL(fileURLToPath(import.meta.url)).href;
