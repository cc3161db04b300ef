// Prints the README's configuration table from the config schema: npx ts-node scripts/config-table.ts
import { configTableMarkdown } from '../src/config/config';

process.stdout.write(configTableMarkdown() + '\n');
