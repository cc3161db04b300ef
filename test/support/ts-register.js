// Runs the TypeScript sources in child processes, as ts-node's transpile-only mode does, with a disk cache of the
// transpiled files (keyed by content), so several gateways started by one test transpile the tree once:
//   node -r test/support/ts-register.js src/main.ts
// warm(files) fills the cache ahead (in the test's own process). The cache lives in the OS temp folder.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const ts = require('typescript');

const COMPILER_OPTIONS = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2022,
  esModuleInterop: true,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  resolveJsonModule: true,
  isolatedModules: true,
  inlineSourceMap: true,
};
const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
const CACHE_DIR = path.join(os.tmpdir(), `faceid-ts-cache-${uid}`);
const SALT = `${ts.version}:${JSON.stringify(COMPILER_OPTIONS)}`;

function transpile(filename, source) {
  const key = crypto
    .createHash('sha256')
    .update(SALT)
    .update('\0')
    .update(filename)
    .update('\0')
    .update(source)
    .digest('hex');
  const file = path.join(CACHE_DIR, `${key}.js`);
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    // not cached yet
  }
  const out = ts.transpileModule(source, { fileName: filename, compilerOptions: COMPILER_OPTIONS }).outputText;
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, out);
  fs.renameSync(tmp, file); // atomic: a concurrent reader sees the whole file or none
  return out;
}

/** Transpiles these .ts files into the cache (for a test to do once before it starts its children). */
function warm(files) {
  for (const f of files) transpile(f, fs.readFileSync(f, 'utf8'));
}

/** Every .ts file under `dir` (no .d.ts, no specs). */
function sources(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !e.name.endsWith('.spec.ts')) out.push(p);
  }
  return out;
}

function register() {
  require.extensions['.ts'] = function compileTs(module, filename) {
    module._compile(transpile(filename, fs.readFileSync(filename, 'utf8')), filename);
  };
}

module.exports = { warm, sources, register, CACHE_DIR };

// Preloaded with `node -r`: hook .ts files in this process.
if (module.parent === null || (module.parent && module.parent.id === 'internal/preload')) register();
