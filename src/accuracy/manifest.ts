/**
 * Labelled image lists (`file,identity` CSV manifests) and a small concurrency helper, shared by `faceid eval`, the
 * accuracy runs and the tests.
 */
import * as path from 'node:path';

/**
 * Parses CSV text (RFC 4180): comma-separated, fields optionally in double quotes, "" inside quotes is a quote,
 * quoted fields may hold commas and line breaks; CRLF or LF line ends; a leading UTF-8 BOM is ignored.
 * Blank lines are skipped. Throws on a quote that is never closed or text right after a closing quote.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false; // the current field was written in quotes
  let atFieldStart = true;
  let line = 1;
  const endField = (): void => {
    row.push(field);
    field = '';
    atFieldStart = true;
  };
  const endRow = (): void => {
    const blank = row.length === 1 && row[0] === '' && !quoted;
    if (!blank) rows.push(row);
    row = [];
    quoted = false;
  };
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' && atFieldStart) {
      const start = line;
      quoted = true;
      atFieldStart = false;
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`CSV line ${start}: a quoted field is never closed.`);
        const q = text[i++];
        if (q === '"') {
          if (text[i] !== '"') break;
          i++;
        } else if (q === '\n') line++;
        field += q;
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw new Error(`CSV line ${line}: unexpected text after a closing quote.`);
      }
    } else if (c === ',') {
      endField();
      i++;
    } else if (c === '\r' || c === '\n') {
      endField();
      endRow();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
    } else {
      field += c;
      atFieldStart = false;
      i++;
    }
  }
  if (!atFieldStart || row.length > 0) {
    endField();
    endRow();
  }
  return rows;
}

export interface ManifestEntry {
  /** Path as written in the manifest. */
  file: string;
  /** Path resolved against the manifest's folder. */
  path: string;
  /** Empty = unlabelled. */
  identity: string;
}

/** Reads the header (columns `file` and `identity`, any order, others ignored) and the rows. */
export function parseManifest(text: string, manifestDir: string): ManifestEntry[] {
  const [header, ...rows] = parseCsv(text);
  if (!header) throw new Error('The manifest is empty.');
  const names = header.map((h) => h.trim().toLowerCase());
  const fileCol = names.indexOf('file');
  const idCol = names.indexOf('identity');
  if (fileCol < 0 || idCol < 0) throw new Error('The manifest header must have the columns "file" and "identity".');
  const entries: ManifestEntry[] = [];
  rows.forEach((r, k) => {
    const file = (r[fileCol] ?? '').trim();
    if (file === '') throw new Error(`Manifest row ${k + 2}: the file column is empty.`);
    entries.push({ file, path: path.resolve(manifestDir, file), identity: (r[idCol] ?? '').trim() });
  });
  return entries;
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>) {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const k = next++;
      results[k] = await fn(items[k], k);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
