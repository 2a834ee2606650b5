// Writes the conformance fixture images (busybox.tar, layered.tar) from a static busybox, with
// the library's own archive writer: no Docker. Run on the built packages (npx tsc -b first):
//   node scripts/build-fixtures.mjs BUSYBOX CACHE_DIR
// Prints the fixture folder, CACHE_DIR/<hash of the archives' bytes>; a complete one is reused.
import { writeFixtures } from "@contexec/conformance/fixtures";

const [busybox, cacheDir] = process.argv.slice(2);
if (!busybox || !cacheDir) {
  console.error("usage: node scripts/build-fixtures.mjs BUSYBOX CACHE_DIR");
  process.exit(2);
}
process.stdout.write(`${await writeFixtures(cacheDir, busybox)}\n`);
