// Writes docs/events/*.schema.json and docs/events/examples/*.json from the zod event schemas (src/events/schemas.ts):
//   npx ts-node --transpile-only scripts/event-schemas.ts          (rewrite)
//   npx ts-node --transpile-only scripts/event-schemas.ts --check  (exit 1 if out of date)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderEventDocs } from '../src/events/schema-docs';

const dir = path.join(__dirname, '..', 'docs', 'events');
const stale: string[] = [];
for (const [name, content] of renderEventDocs()) {
  const file = path.join(dir, name);
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
  if (current === content) continue;
  stale.push(`docs/events/${name}`);
  if (!process.argv.includes('--check')) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }
}
if (process.argv.includes('--check') && stale.length) {
  process.stderr.write(`Out of date: ${stale.join(', ')}: run npx ts-node --transpile-only scripts/event-schemas.ts\n`);
  process.exit(1);
}
if (stale.length) process.stdout.write(`Updated ${stale.join(', ')}\n`);
