import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..');

/** The paths in the first column of the README's "## Layout" table, e.g. `src/engine/`, `models/manifest.json`. */
function layoutPaths(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = /^## Layout\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(readme);
  if (!section) throw new Error('README.md has no "## Layout" section.');
  const rows = section[1].split('\n').filter((l) => l.startsWith('|'));
  // The header and its separator first.
  expect(rows.slice(0, 2)).toEqual(['| Folder | Owns |', '|---|---|']);
  return rows.slice(2).flatMap((row) => {
    const first = row.split('|')[1];
    const names = [...first.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    if (names.length === 0) throw new Error(`A row of the layout table names no path: ${row}`);
    return names;
  });
}

describe("the README's layout table", () => {
  const named = layoutPaths();

  it('names only folders and files that exist', () => {
    const missing = named.filter((p) => {
      const stat = fs.statSync(path.join(ROOT, p), { throwIfNoEntry: false });
      return !stat || (p.endsWith('/') ? !stat.isDirectory() : !stat.isFile());
    });
    expect(missing).toEqual([]);
  });

  it('names every folder under src/', () => {
    const folders = fs
      .readdirSync(path.join(ROOT, 'src'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `src/${e.name}/`);
    expect(folders.length).toBeGreaterThan(10);
    expect(folders.filter((f) => !named.includes(f))).toEqual([]);
  });
});
