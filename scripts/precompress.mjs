// Compresses the release bundle once, at build time, at the highest levels
// (brotli 11, gzip 9), beside the files: `moim.wasm.br`, `moim.wasm.gz`, ...
// The server (tower-http's ServeDir, `server::bundle`) sends the smallest
// one the browser accepts, with its `Content-Encoding`, instead of
// compressing the bundle on every request at a quick, weaker level.
// Node's own zlib: nothing to install.
//
// Usage: node scripts/precompress.mjs SITE_ROOT/pkg

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node scripts/precompress.mjs SITE_ROOT/pkg");
  process.exit(2);
}
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
for (const name of readdirSync(dir).sort()) {
  if (!/\.(wasm|js|css)$/.test(name)) continue;
  const path = join(dir, name);
  const data = readFileSync(path);
  const br = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_LGWIN]: constants.BROTLI_MAX_WINDOW_BITS,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  const gz = gzipSync(data, { level: 9 });
  writeFileSync(`${path}.br`, br);
  writeFileSync(`${path}.gz`, gz);
  console.error(`precompressed ${name}: ${kib(data.length)} -> br ${kib(br.length)}, gzip ${kib(gz.length)}`);
}
