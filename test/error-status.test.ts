import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Logger } from '@nestjs/common';
import { createApp } from '../src/app.factory';
import { API_ERROR_CLASSES } from '../src/app.module';
import { loadConfig } from '../src/config';
import { AppError, ErrorFilter, errorStatusTable, OpenApiService } from '../src/http';
import { JsonLogger } from '../src/json-logger';

/** Every error code the API answers with and its HTTP status. Changing one is a change of the public API. */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  admin_disabled: 404,
  attempts_exceeded: 429,
  audit_detail_rejected: 500,
  busy: 503,
  calibration_range_invalid: 400,
  capacity_exceeded: 503,
  clinic_not_found: 404,
  code_already_sent: 409,
  code_attempts_exceeded: 429,
  code_expired: 410,
  code_invalid: 422,
  code_locked_out: 429,
  code_not_requested: 409,
  code_resend_limit: 429,
  code_used: 409,
  confirmation_not_found: 404,
  conflict: 409,
  cursor_unknown: 404,
  database_unavailable: 503,
  desk_enrollment_disabled: 403,
  draining: 503,
  engine_closed: 503,
  enroll_multiple_faces: 422,
  enroll_no_face: 422,
  event_not_found: 404,
  forbidden: 403,
  iin_invalid: 400,
  internal: 500,
  invalid_argument: 400,
  invalid_request: 400,
  key_rotation_limit: 409,
  key_unknown: 500,
  method_not_allowed: 405,
  mis_client_not_found: 404,
  model_invalid: 503,
  model_missing: 503,
  no_template: 409,
  not_found: 404,
  patient_not_found: 404,
  payload_too_large: 413,
  rate_limited: 429,
  session_finished: 409,
  session_not_found: 404,
  sms_unavailable: 502,
  stats_range_invalid: 400,
  template_decrypt_failed: 500,
  template_key_unknown: 500,
  template_not_found: 404,
  token_expired: 401,
  token_invalid: 401,
  unauthorized: 401,
  unavailable: 503,
  unseal_failed: 500,
  unsupported_media_type: 415,
  webhook_destination_refused: 400,
  webhook_limit_reached: 409,
  webhook_not_found: 404,
  webhook_url_invalid: 400,
  workstation_not_found: 404,
};

describe('the HTTP status of every error code', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose']));

  it('is the pinned one, across the classes the app lists and the shared codes', () => {
    expect(errorStatusTable(API_ERROR_CLASSES)).toEqual(STATUS_BY_CODE);
  });

  it('is what the error filter answers for an error of the class that owns the code', () => {
    const filter = new ErrorFilter();
    const answered: Record<string, number> = {};
    const shared = errorStatusTable();
    for (const code of Object.keys(shared)) answered[code] = filter.reply(new AppError(code, 'x')).status;
    for (const cls of API_ERROR_CLASSES) {
      for (const code of Object.keys(cls.status)) {
        // The constructors differ (some fix their code): an instance of the class with this code, built directly.
        const err = Object.assign(Object.create(cls.prototype) as AppError, { code, message: 'x' });
        answered[code] = filter.reply(err).status;
      }
    }
    expect(answered).toEqual(STATUS_BY_CODE);
  });

  describe('in the OpenAPI document of the app', () => {
    let doc: any;

    beforeAll(async () => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-errors-'));
      const config = loadConfig({
        ...process.env,
        FACEID_DATA_DIR: dataDir,
        FACEID_BOOTSTRAP: 'false',
        DATABASE_URL: '',
      });
      // Built, not started: the routes are known once the modules are, and the engine opens only on init.
      const app = await createApp({ config, logger: new JsonLogger('fatal', () => undefined) });
      try {
        doc = app.get(OpenApiService).get();
      } finally {
        await app.close();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });

    it('lists the pinned table', () => {
      const rows = Object.entries(STATUS_BY_CODE).map(([code, status]) => `| \`${code}\` | ${status} |`);
      expect(doc.info.description).toContain('| code | status |\n|---|---|\n' + rows.join('\n'));
    });

    it("documents every route's codes under their status: none falls back to 500", () => {
      const documented: Record<string, number> = {};
      for (const ops of Object.values<Record<string, any>>(doc.paths)) {
        for (const op of Object.values<any>(ops)) {
          for (const [status, r] of Object.entries<any>(op.responses)) {
            for (const m of String(r.description).matchAll(/`([a-z0-9_]+)`/g)) documented[m[1]] = Number(status);
          }
        }
      }
      for (const [code, status] of Object.entries(documented)) {
        expect([code, status]).toEqual([code, code.startsWith('frame_') ? 422 : STATUS_BY_CODE[code]]);
      }
      expect(Object.keys(documented).length).toBeGreaterThan(30);
    });
  });
});
