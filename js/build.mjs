// Bundle src/ into ../annowidget/static/ (one ES module + one stylesheet) for anywidget.
// The bundle is committed so that `pip install` works without node.
//   node build.mjs          write the bundle
//   node build.mjs --check  exit 1 if the committed bundle differs from a fresh build
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "annowidget", "static");
const targets = [
  { entry: "src/widget.js", out: "annotator.js" },
  { entry: "src/annotator.css", out: "annotator.css" },
];

async function bundle(entry) {
  const result = await esbuild.build({
    entryPoints: [join(here, entry)],
    bundle: true,
    format: "esm",
    target: ["es2020"],
    minify: true, // the ES module text is a widget trait: it lands in saved notebook state
    legalComments: "none",
    write: false,
    logLevel: "warning",
  });
  return result.outputFiles[0].text;
}

const check = process.argv.includes("--check");
let stale = 0;
await mkdir(outDir, { recursive: true });
for (const { entry, out } of targets) {
  const text = await bundle(entry);
  const path = join(outDir, out);
  if (check) {
    const current = await readFile(path, "utf8").catch(() => null);
    if (current !== text) {
      console.error(`${path} is stale: run \`npm run build\` in js/ and commit it`);
      stale++;
    }
  } else {
    await writeFile(path, text);
    console.log(`wrote ${path} (${text.length} bytes)`);
  }
}
process.exit(stale ? 1 : 0);
