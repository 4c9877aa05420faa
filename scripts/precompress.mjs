// Compresses the release bundle once, at build time, at the highest levels
// (brotli 11, gzip 9), beside the files: `moim.wasm.br`, `moim.wasm.gz`, ...
// The server (tower-http's ServeDir, `server::bundle`) sends the smallest
// one the browser accepts, with its `Content-Encoding`, instead of
// compressing the bundle on every request at a quick, weaker level.
// Node's own zlib: nothing to install.
//
// `--quick` is for a debug bundle served on loopback (`scripts/test.sh`):
// gzip at level 1 only, in about a second for its ~40 MB. Compressed by the
// server on every request instead, a first visit to the call page took
// 1.7 s to hydrate rather than 0.9 s (`bench/pages` on the debug site,
// 2-CPU machine), and every browser of an end-to-end test is a first
// visit. It also serves the tests through the same precompressed path a
// release site takes.
//
// Usage: node scripts/precompress.mjs [--quick] SITE_ROOT/pkg

import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";

const args = process.argv.slice(2);
const quick = args[0] === "--quick";
const dir = quick ? args[1] : args[0];
if (!dir) {
  console.error("usage: node scripts/precompress.mjs [--quick] SITE_ROOT/pkg");
  process.exit(2);
}
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
let before = 0;
let after = 0;
for (const name of readdirSync(dir).sort()) {
  if (!/\.(wasm|js|css)$/.test(name)) continue;
  const path = join(dir, name);
  const data = readFileSync(path);
  const gz = gzipSync(data, { level: quick ? 1 : 9 });
  writeFileSync(`${path}.gz`, gz);
  before += data.length;
  after += gz.length;
  if (quick) {
    // A brotli copy from an earlier release build would be older than
    // this file, and one stale copy turns all of them off.
    rmSync(`${path}.br`, { force: true });
    continue;
  }
  const br = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_LGWIN]: constants.BROTLI_MAX_WINDOW_BITS,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  writeFileSync(`${path}.br`, br);
  console.error(`precompressed ${name}: ${kib(data.length)} -> br ${kib(br.length)}, gzip ${kib(gz.length)}`);
}
if (quick) console.error(`precompressed the bundle (gzip, level 1): ${kib(before)} -> ${kib(after)}`);
