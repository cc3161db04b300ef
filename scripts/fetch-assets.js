#!/usr/bin/env node
'use strict';
// Usage: node scripts/fetch-assets.js [models|fixtures|all]   (default all; `npm run models` runs this)
// Fetches the pinned files of models/manifest.json into the cache; files already present and valid are skipped.

const { KINDS, fetchAssets } = require('./assets');

async function main(arg = 'all') {
  if (arg !== 'all' && !KINDS.includes(arg)) {
    throw new Error(`usage: node scripts/fetch-assets.js [${KINDS.join('|')}|all]`);
  }
  for (const kind of arg === 'all' ? KINDS : [arg]) {
    const { dir, fetched, present } = await fetchAssets({ kind });
    process.stderr.write(`${kind}: ready in ${dir} (${present.length} present, ${fetched.length} fetched)\n`);
  }
}

main(process.argv[2]).catch((err) => {
  process.stderr.write(`fetch-assets: ${err.message}\n`);
  process.exit(1);
});
