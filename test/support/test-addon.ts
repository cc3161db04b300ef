import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The tests' build of the addon (native/build-test, made by `bash scripts/dev.sh test`): the product addon plus the
 * switch that turns every wipe off. Only the zeroing proofs' control runs load it, each in a process of its own; a
 * product build refuses `unsafeDisableWipe`.
 */
export const TEST_ADDON = path.resolve(__dirname, '..', '..', 'native', 'build-test', 'Release', 'faceid.node');

/** The environment of a control-run child: FACEID_ADDON pointing at the test build (which must exist). */
export function controlRunEnv(): NodeJS.ProcessEnv {
  if (!fs.existsSync(TEST_ADDON)) {
    throw new Error(
      `The test build of the addon is missing (${path.relative(process.cwd(), TEST_ADDON)}): ` +
        'run `bash scripts/dev.sh test` (or `npm run build:native:test`) first.',
    );
  }
  return { ...process.env, FACEID_ADDON: TEST_ADDON };
}
