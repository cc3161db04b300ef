import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { Client as PgClient } from 'pg';
import { migrate } from '../src/storage';

// Keeps the two Prisma schemas and their hand-written migrations in step:
// 1. both schema.prisma files declare the same models, fields, types, relations, unique constraints and indexes;
// 2. a fresh database of each provider, migrated, has exactly the tables, columns, keys and indexes those models
//    imply (Prisma's naming: Model_pkey, Model_a_b_key, Model_a_b_idx, Model_a_b_fkey).

const ROOT = path.resolve(__dirname, '..');
const PG_ADMIN = process.env.FACEID_TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

// ---- A small parser for the subset of the Prisma schema language the schemas use ----

interface Field {
  name: string;
  type: string;
  optional: boolean;
  list: boolean;
  /** Field attributes without @db.* native types, normalised (e.g. `@default(now())`, `@relation(...)`). */
  attributes: string[];
  /** The @db.* native type, if any (allowed to differ between providers). */
  nativeType: string | null;
}

interface Model {
  name: string;
  fields: Field[];
  /** @@unique / @@index / @@id lines, normalised. */
  blockAttributes: string[];
}

const SCALARS = new Set(['String', 'Int', 'BigInt', 'Float', 'Decimal', 'Boolean', 'DateTime', 'Json', 'Bytes']);

/** Splits attributes at top-level `@`, keeping parenthesised arguments whole. */
function splitAttributes(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(' || ch === '[') depth++;
    if (ch === ')' || ch === ']') depth--;
    if (ch === '@' && depth === 0 && current.trim() !== '' && !current.endsWith('@')) {
      out.push(current.trim());
      current = '';
    }
    current += ch;
  }
  if (current.trim()) out.push(current.trim());
  return out.map((a) =>
    a
      .replace(/\s+/g, ' ')
      .replace(/\s*([(),:[\]])\s*/g, '$1')
      .replace(/,/g, ', '),
  );
}

function parseSchema(file: string): { provider: string; models: Map<string, Model> } {
  const text = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.replace(/\/\/.*$/, '').trimEnd()) // comments, doc comments included
    .join('\n');
  const provider = /datasource\s+\w+\s*{[^}]*provider\s*=\s*"([^"]+)"/.exec(text)?.[1] ?? '';
  const models = new Map<string, Model>();
  for (const m of text.matchAll(/model\s+(\w+)\s*{([^}]*)}/g)) {
    const model: Model = { name: m[1], fields: [], blockAttributes: [] };
    for (const raw of m[2].split('\n')) {
      const line = raw.trim();
      if (!line) continue;
      if (line.startsWith('@@')) {
        model.blockAttributes.push(...splitAttributes(line));
        continue;
      }
      const fm = /^(\w+)\s+(\w+)(\[\])?(\?)?\s*(.*)$/.exec(line);
      if (!fm) throw new Error(`${file}: cannot parse "${line}" in model ${model.name}`);
      const attrs = splitAttributes(fm[5]);
      model.fields.push({
        name: fm[1],
        type: fm[2],
        list: fm[3] !== undefined,
        optional: fm[4] !== undefined,
        attributes: attrs.filter((a) => !a.startsWith('@db.')),
        nativeType: attrs.find((a) => a.startsWith('@db.')) ?? null,
      });
    }
    models.set(model.name, model);
  }
  return { provider, models };
}

const sqliteSchema = parseSchema(path.join(ROOT, 'prisma', 'sqlite', 'schema.prisma'));
const pgSchema = parseSchema(path.join(ROOT, 'prisma', 'postgres', 'schema.prisma'));

describe('the two Prisma schemas', () => {
  it('name their providers', () => {
    expect(sqliteSchema.provider).toBe('sqlite');
    expect(pgSchema.provider).toBe('postgresql');
  });

  it('declare the same models', () => {
    expect([...pgSchema.models.keys()]).toEqual([...sqliteSchema.models.keys()]);
    expect(sqliteSchema.models.size).toBeGreaterThanOrEqual(7);
  });

  for (const name of sqliteSchema.models.keys()) {
    it(`agree on model ${name}: fields, types, relations, keys and indexes`, () => {
      const a = sqliteSchema.models.get(name)!;
      const b = pgSchema.models.get(name);
      expect(b).toBeDefined();
      const shape = (m: Model) => ({
        fields: m.fields.map(({ nativeType: _ignored, ...f }) => f), // native types may differ per provider
        blockAttributes: m.blockAttributes,
      });
      expect(shape(b!)).toEqual(shape(a));
    });
  }
});

// ---- What a migrated database must contain, derived from the parsed models ----

interface Column {
  type: string;
  nullable: boolean;
  hasDefault: boolean;
}
interface Index {
  columns: string[];
  unique: boolean;
}
interface ForeignKey {
  columns: string[];
  table: string;
  references: string[];
  onDelete: string;
  onUpdate: string;
}
interface Table {
  columns: Record<string, Column>;
  primaryKey: string[];
  indexes: Record<string, Index>;
  /** Keyed by Prisma's constraint name on PostgreSQL; SQLite keeps no names, so keyed by the columns there. */
  foreignKeys: Record<string, ForeignKey>;
}

const COLUMN_TYPES: Record<'sqlite' | 'postgres', Record<string, string>> = {
  sqlite: {
    String: 'TEXT',
    Int: 'INTEGER',
    Float: 'REAL',
    DateTime: 'DATETIME',
    Bytes: 'BLOB',
    Json: 'JSONB',
    Boolean: 'BOOLEAN',
  },
  postgres: {
    String: 'text',
    Int: 'integer',
    Float: 'double precision',
    DateTime: 'timestamp(3) without time zone',
    Bytes: 'bytea',
    Json: 'jsonb',
    Boolean: 'boolean',
  },
};

const listArg = (attr: string, key?: string): string[] => {
  const m = key ? new RegExp(`${key}:\\s*\\[([^\\]]*)\\]`).exec(attr) : /\(\[([^\]]*)\]/.exec(attr);
  return m
    ? m[1]
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
};

function expectedTables(models: Map<string, Model>, provider: 'sqlite' | 'postgres'): Record<string, Table> {
  const tables: Record<string, Table> = {};
  for (const model of models.values()) {
    const t: Table = { columns: {}, primaryKey: [], indexes: {}, foreignKeys: {} };
    for (const f of model.fields) {
      if (SCALARS.has(f.type)) {
        const type = COLUMN_TYPES[provider][f.type];
        if (!type) throw new Error(`no column type for ${f.type}`);
        const dflt = f.attributes.find((a) => a.startsWith('@default('));
        // Only database defaults count: now(), autoincrement(), literals (numbers, strings, true and false) are;
        // uuid() and cuid() would be client-side.
        const hasDefault =
          dflt !== undefined && /now\(\)|autoincrement\(\)|^@default\(([^a-z]|(true|false)\))/.test(dflt);
        t.columns[f.name] = { type, nullable: f.optional, hasDefault };
        if (f.attributes.includes('@id')) t.primaryKey = [f.name];
        if (f.attributes.includes('@unique'))
          t.indexes[`${model.name}_${f.name}_key`] = { columns: [f.name], unique: true };
      }
      const rel = f.attributes.find((a) => a.startsWith('@relation(') && a.includes('fields:'));
      if (rel) {
        const columns = listArg(rel, 'fields');
        const onDelete = /onDelete:\s*(\w+)/.exec(rel)?.[1] ?? (f.optional ? 'SetNull' : 'Restrict');
        const onUpdate = /onUpdate:\s*(\w+)/.exec(rel)?.[1] ?? 'Cascade';
        const key = provider === 'postgres' ? `${model.name}_${columns.join('_')}_fkey` : columns.join(',');
        t.foreignKeys[key] = { columns, table: f.type, references: listArg(rel, 'references'), onDelete, onUpdate };
      }
    }
    for (const attr of model.blockAttributes) {
      const columns = listArg(attr);
      if (attr.startsWith('@@id(')) t.primaryKey = columns;
      else if (attr.startsWith('@@unique('))
        t.indexes[`${model.name}_${columns.join('_')}_key`] = { columns, unique: true };
      else if (attr.startsWith('@@index('))
        t.indexes[`${model.name}_${columns.join('_')}_idx`] = { columns, unique: false };
      else throw new Error(`unexpected block attribute ${attr}`);
    }
    tables[model.name] = t;
  }
  return tables;
}

const ACTIONS: Record<string, string> = {
  RESTRICT: 'Restrict',
  CASCADE: 'Cascade',
  'SET NULL': 'SetNull',
  'NO ACTION': 'NoAction',
  'SET DEFAULT': 'SetDefault',
  r: 'Restrict',
  c: 'Cascade',
  n: 'SetNull',
  a: 'NoAction',
  d: 'SetDefault',
};

function introspectSqlite(file: string): Record<string, Table> {
  const db = new Database(file, { readonly: true });
  try {
    const tables: Record<string, Table> = {};
    const names = db
      .prepare(
        `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_prisma_migrations'`,
      )
      .pluck()
      .all() as string[];
    for (const name of names) {
      const t: Table = { columns: {}, primaryKey: [], indexes: {}, foreignKeys: {} };
      const cols = db.pragma(`table_info("${name}")`) as {
        name: string;
        type: string;
        notnull: number;
        dflt_value: unknown;
        pk: number;
      }[];
      const autoincrement = /AUTOINCREMENT/i.test(
        db.prepare(`SELECT sql FROM sqlite_master WHERE name = ?`).pluck().get(name) as string,
      );
      for (const c of cols) {
        // INTEGER PRIMARY KEY AUTOINCREMENT is SQLite's autoincrement(): the rowid, so a default of sorts.
        const hasDefault = c.dflt_value !== null || (autoincrement && c.pk === 1 && c.type === 'INTEGER');
        t.columns[c.name] = { type: c.type, nullable: c.notnull === 0, hasDefault };
      }
      t.primaryKey = cols
        .filter((c) => c.pk > 0)
        .sort((x, y) => x.pk - y.pk)
        .map((c) => c.name);
      for (const idx of db.pragma(`index_list("${name}")`) as { name: string; unique: number; origin: string }[]) {
        if (idx.origin !== 'c') continue; // pk / unique-constraint autoindexes are not Prisma's indexes
        const columns = (db.pragma(`index_info("${idx.name}")`) as { seqno: number; name: string }[])
          .sort((x, y) => x.seqno - y.seqno)
          .map((c) => c.name);
        t.indexes[idx.name] = { columns, unique: idx.unique === 1 };
      }
      const fks = db.pragma(`foreign_key_list("${name}")`) as {
        id: number;
        seq: number;
        table: string;
        from: string;
        to: string;
        on_update: string;
        on_delete: string;
      }[];
      for (const id of new Set(fks.map((f) => f.id))) {
        const parts = fks.filter((f) => f.id === id).sort((x, y) => x.seq - y.seq);
        t.foreignKeys[parts.map((p) => p.from).join(',')] = {
          columns: parts.map((p) => p.from),
          table: parts[0].table,
          references: parts.map((p) => p.to),
          onDelete: ACTIONS[parts[0].on_delete],
          onUpdate: ACTIONS[parts[0].on_update],
        };
      }
      tables[name] = t;
    }
    return tables;
  } finally {
    db.close();
  }
}

async function introspectPostgres(client: PgClient): Promise<Record<string, Table>> {
  const tables: Record<string, Table> = {};
  const cols = await client.query<{
    table_name: string;
    column_name: string;
    type: string;
    is_nullable: string;
    column_default: string | null;
  }>(
    `SELECT c.table_name, c.column_name, format_type(a.atttypid, a.atttypmod) AS type, c.is_nullable, c.column_default
       FROM information_schema.columns c
       JOIN pg_attribute a ON a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass AND a.attname = c.column_name
      WHERE c.table_schema = 'public' AND c.table_name <> '_prisma_migrations'
      ORDER BY c.table_name, c.ordinal_position`,
  );
  for (const c of cols.rows) {
    tables[c.table_name] ??= { columns: {}, primaryKey: [], indexes: {}, foreignKeys: {} };
    tables[c.table_name].columns[c.column_name] = {
      type: c.type,
      nullable: c.is_nullable === 'YES',
      hasDefault: c.column_default !== null,
    };
  }
  // Every index of the schema, from pg_indexes, with its columns in order.
  const indexes = await client.query<{
    tablename: string;
    indexname: string;
    unique: boolean;
    primary: boolean;
    columns: string[];
  }>(
    `SELECT i.tablename, i.indexname, x.indisunique AS unique, x.indisprimary AS primary,
            ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
       FROM pg_indexes i
       JOIN pg_class ic ON ic.relname = i.indexname
       JOIN pg_namespace n ON n.oid = ic.relnamespace AND n.nspname = i.schemaname
       JOIN pg_index x ON x.indexrelid = ic.oid
      WHERE i.schemaname = 'public' AND i.tablename <> '_prisma_migrations'`,
  );
  for (const i of indexes.rows) {
    if (i.primary) {
      expect(i.indexname).toBe(`${i.tablename}_pkey`);
      tables[i.tablename].primaryKey = i.columns;
    } else {
      tables[i.tablename].indexes[i.indexname] = { columns: i.columns, unique: i.unique };
    }
  }
  const fks = await client.query<{
    conname: string;
    table: string;
    ref: string;
    del: string;
    upd: string;
    columns: string[];
    refcolumns: string[];
  }>(
    `SELECT c.conname, t.relname AS table, f.relname AS ref, c.confdeltype::text AS del, c.confupdtype::text AS upd,
            ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, ord)
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.ord) AS columns,
            ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, ord)
                  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.ord) AS refcolumns
       FROM pg_constraint c
       JOIN pg_class t ON t.oid = c.conrelid
       JOIN pg_class f ON f.oid = c.confrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
      WHERE c.contype = 'f'`,
  );
  for (const f of fks.rows) {
    tables[f.table].foreignKeys[f.conname] = {
      columns: f.columns,
      table: f.ref,
      references: f.refcolumns,
      onDelete: ACTIONS[f.del],
      onUpdate: ACTIONS[f.upd],
    };
  }
  return tables;
}

describe('a migrated database matches its schema', () => {
  it('SQLite: tables, columns, primary keys, indexes and foreign keys', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-schema-'));
    try {
      const file = path.join(dir, 'faceid.db');
      await migrate({ provider: 'sqlite', file });
      expect(introspectSqlite(file)).toEqual(expectedTables(sqliteSchema.models, 'sqlite'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      "const {Client}=require('pg');const c=new Client({connectionString:process.argv[1],connectionTimeoutMillis:5000});" +
        'c.connect().then(()=>c.end()).then(()=>process.exit(0),(e)=>{console.error(e.message);process.exit(1)})',
      PG_ADMIN,
    ],
    { cwd: ROOT, encoding: 'utf8', timeout: 15_000 },
  );
  const pgReason =
    process.env.FACEID_TEST_PG === '0'
      ? 'FACEID_TEST_PG=0'
      : probe.status === 0
        ? null
        : `PostgreSQL is not reachable (${(probe.stderr || 'timeout').trim()})`;
  const skipPg = pgReason !== null && (!process.env.CI || process.env.FACEID_TEST_PG === '0');
  if (skipPg) console.warn(`schema check on PostgreSQL skipped: ${pgReason}`);

  (skipPg ? it.skip : it)('PostgreSQL: tables, columns, primary keys, indexes and foreign keys', async () => {
    if (pgReason) throw new Error(`PostgreSQL is required in CI: ${pgReason}`);
    const name = `faceid_t_${randomBytes(5).toString('hex')}`;
    const admin = new PgClient({ connectionString: PG_ADMIN });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    try {
      const url = PG_ADMIN.replace(/\/[^/?]*(\?|$)/, `/${name}$1`);
      await migrate({ provider: 'postgres', url });
      const client = new PgClient({ connectionString: url });
      await client.connect();
      try {
        expect(await introspectPostgres(client)).toEqual(expectedTables(pgSchema.models, 'postgres'));
      } finally {
        await client.end();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });
});
