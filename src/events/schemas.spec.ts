import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { EVENT_EXAMPLES, renderEventDocs } from './schema-docs';
import { EVENT_SCHEMAS, EVENT_TYPES, EventSchema, schemaFileName } from './schemas';

const DOCS = path.join(__dirname, '..', '..', 'docs', 'events');

describe('docs/events', () => {
  it('match the zod schemas (regenerate: npx ts-node --transpile-only scripts/event-schemas.ts)', () => {
    const files = renderEventDocs();
    expect(files.size).toBe(EVENT_TYPES.length * 2);
    for (const [name, content] of files) {
      const file = path.join(DOCS, name);
      expect(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : `(missing ${name})`).toBe(content);
    }
  });

  it('hold one strict JSON Schema per type that accepts its example and refuses extra keys', () => {
    for (const type of EVENT_TYPES) {
      const json = JSON.parse(fs.readFileSync(path.join(DOCS, schemaFileName(type)), 'utf8'));
      expect(json).toMatchObject({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        additionalProperties: false,
      });
      const fromFile = z.fromJSONSchema(json);
      const example = JSON.parse(fs.readFileSync(path.join(DOCS, 'examples', `${type}.v1.json`), 'utf8'));
      expect(example).toEqual(EVENT_EXAMPLES[type]);
      expect(fromFile.safeParse(example).success).toBe(true);
      expect(fromFile.safeParse({ ...example, embedding: [0.1, 0.2] }).success).toBe(false);
      expect(fromFile.safeParse({ ...example, liveness: { crop: 'iVBORw0KGgo' } }).success).toBe(false);
      expect(fromFile.safeParse({ ...example, liveness: { values: [1, 2, 3] } }).success).toBe(false);
      for (const other of EVENT_TYPES.filter((t) => t !== type)) {
        expect(fromFile.safeParse(EVENT_EXAMPLES[other]).success).toBe(false);
      }
    }
  });

  it('the union picks the schema by type', () => {
    for (const type of EVENT_TYPES) expect(EventSchema.parse(EVENT_EXAMPLES[type])).toEqual(EVENT_EXAMPLES[type]);
    const refused = EVENT_EXAMPLES['identification.refused'];
    expect(EVENT_SCHEMAS['identification.refused'].safeParse({ ...refused, reason: 'Has Spaces' }).success).toBe(false);
    expect(EventSchema.safeParse({ ...refused, type: 'identification.unknown' }).success).toBe(false);
  });
});
