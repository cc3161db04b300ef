// Regenerates the generated blocks of docs/protocol.md from the protocol schemas:
//   npx ts-node --transpile-only scripts/protocol-doc.ts          (rewrite)
//   npx ts-node --transpile-only scripts/protocol-doc.ts --check  (exit 1 if out of date)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderProtocolDoc } from '../src/transport/protocol-doc';

const file = path.join(__dirname, '..', 'docs', 'protocol.md');
const current = fs.readFileSync(file, 'utf8');
const next = renderProtocolDoc(current);
if (process.argv.includes('--check')) {
  if (next !== current) {
    process.stderr.write('docs/protocol.md is out of date: run npx ts-node --transpile-only scripts/protocol-doc.ts\n');
    process.exit(1);
  }
} else if (next !== current) {
  fs.writeFileSync(file, next);
  process.stdout.write('docs/protocol.md updated\n');
}
