import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENROLLMENT_ERROR_STATUS } from '../src/enrollment/errors';
import { IDENTIFICATION_ERROR_STATUS } from '../src/identification/errors';
import { GUIDANCE_CODES, LIVENESS_REASONS, VERDICT_RESULTS } from '../src/transport/protocol';

// The desk's dictionaries (client/locales/<lang>.json): every language has every key, no text is empty, the
// placeholders agree, and every text the page and the client module can need is there. No browser needed.

const CLIENT = path.join(__dirname, '..', 'client');
const LOCALES = path.join(CLIENT, 'locales');
const PLACEHOLDER = /\{([a-zA-Z0-9_]+)\}/g;

type Dictionary = Record<string, string>;

function load(lang: string): Dictionary {
  return JSON.parse(fs.readFileSync(path.join(LOCALES, `${lang}.json`), 'utf8')) as Dictionary;
}

/** The languages the page offers: LANGUAGES in client/demo/i18n.js. */
function offered(): string[] {
  const source = fs.readFileSync(path.join(CLIENT, 'demo', 'i18n.js'), 'utf8');
  const list = /export const LANGUAGES = Object\.freeze\(\[([\s\S]*?)\]\)/.exec(source);
  expect(list).not.toBeNull();
  return [...list![1].matchAll(/code: '([a-z]{2,3})'/g)].map((m) => m[1]);
}

const placeholders = (text: string) => [...text.matchAll(PLACEHOLDER)].map((m) => m[1]).sort();

describe('desk dictionaries (client/locales)', () => {
  const languages = offered();
  const dicts = Object.fromEntries(languages.map((l) => [l, load(l)])) as Record<string, Dictionary>;
  const en = dicts.en;
  const keys = Object.keys(en).sort();

  it('offers Kazakh, Russian and English (at least), one file each, and no file the page does not offer', () => {
    expect(languages.slice(0, 3)).toEqual(['kk', 'ru', 'en']);
    const files = fs
      .readdirSync(LOCALES)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
    expect(files.sort()).toEqual([...languages].sort());
  });

  it('is flat: every value is a string', () => {
    for (const lang of languages) {
      for (const [key, value] of Object.entries(dicts[lang])) {
        expect({ lang, key, type: typeof value }).toEqual({ lang, key, type: 'string' });
      }
    }
  });

  it.each(languages.filter((l) => l !== 'en'))('%s has exactly the keys of en', (lang) => {
    expect(Object.keys(dicts[lang]).sort()).toEqual(keys);
  });

  it('has no empty text and no stray spaces', () => {
    for (const lang of languages) {
      for (const [key, value] of Object.entries(dicts[lang])) {
        expect({ lang, key, empty: value.trim() === '', padded: value !== value.trim() }).toEqual({
          lang,
          key,
          empty: false,
          padded: false,
        });
      }
    }
  });

  it('has the same {placeholders} in every language', () => {
    for (const key of keys) {
      for (const lang of languages) {
        expect({ key, lang, placeholders: placeholders(dicts[lang][key]) }).toEqual({
          key,
          lang,
          placeholders: placeholders(en[key]),
        });
      }
    }
  });

  it('is really translated: Kazakh and Russian differ wherever a text is more than a few words', () => {
    const same = keys.filter((k) => dicts.ru[k].split(/\s+/).length > 3 && dicts.kk[k] === dicts.ru[k]);
    expect(same).toEqual([]);
    // Kazakh letters that Russian has not: a Kazakh text is not Russian by mistake.
    const kazakh = /[әғқңөұүһі]/i;
    expect(keys.filter((k) => dicts.ru[k].split(/\s+/).length > 3 && !kazakh.test(dicts.kk[k]))).toEqual([]);
  });

  it('names the IIN as each language does: ЖСН in Kazakh, ИИН in Russian', () => {
    expect(dicts.kk['patient.iin']).toBe('ЖСН');
    expect(dicts.ru['patient.iin']).toBe('ИИН');
    expect(dicts.en['patient.iin']).toBe('IIN');
    for (const key of keys) {
      expect({ key, kk: /ИИН|\bIIN\b/.test(dicts.kk[key]), ru: /ЖСН|\bIIN\b/.test(dicts.ru[key]) }).toEqual({
        key,
        kk: false,
        ru: false,
      });
    }
  });

  it('has a text for every guidance code, verdict result and liveness reason the server sends', () => {
    const missing = [
      ...GUIDANCE_CODES.map((c) => `guidance.${c}`),
      ...VERDICT_RESULTS.map((r) => `verdict.${r}`),
      ...VERDICT_RESULTS.map((r) => `result.${r}`),
      ...LIVENESS_REASONS.map((r) => `reason.${r}`),
      // The code path's results and the events feed's types.
      'verdict.expired',
      'verdict.locked_out',
      'result.expired',
      'result.locked_out',
      'result.refused',
      'method.face',
      'method.code',
      'method.none',
      'event.identification.verdict',
      'event.identification.refused',
      'event.identification.expired',
      'event.identification.locked_out',
      'event.workstation.camera_changed',
      'event.template.enrolled',
      'event.template.replaced',
      'event.template.revoked',
      // Why an in-person visit went to the code (POST /sessions method code).
      'refusal.patient_refused_photo',
      'refusal.face_failed',
      'refusal.camera_unavailable',
    ].filter((k) => !(k in en));
    expect(missing).toEqual([]);
  });

  it('tells the receptionist what to do for every error code of the identification and enrollment flows', () => {
    const codes = [...Object.keys(IDENTIFICATION_ERROR_STATUS), ...Object.keys(ENROLLMENT_ERROR_STATUS)];
    // The codes of the client module's own errors (FaceIdError) and of its close codes.
    const client = fs.readFileSync(path.join(CLIENT, 'faceid-client.js'), 'utf8');
    for (const m of client.matchAll(/new FaceIdError\(\s*'([a-z_]+)'/g)) codes.push(m[1]);
    for (const m of client.matchAll(/^\s+\d{4}: \[\s*'([a-z_]+)'/gm)) codes.push(m[1]);
    expect(codes).toEqual(
      expect.arrayContaining(['attempts_exceeded', 'no_template', 'camera_denied', 'token_invalid']),
    );
    // Shown with the general text: failures of the page's own making, never the receptionist's to fix.
    const general = new Set(['session_invalid']);
    const missing = [...new Set(codes)].filter((c) => !general.has(c) && !(`error.${c}` in en));
    expect(missing).toEqual([]);
    expect(en['error.unknown']).toBeTruthy();
  });

  it('has every key the demo page uses', () => {
    const prefixes = new Set(keys.map((k) => k.split('.')[0]));
    const used = new Set<string>();
    const html = fs.readFileSync(path.join(CLIENT, 'demo', 'index.html'), 'utf8');
    for (const m of html.matchAll(/data-i18n="([^"]+)"/g)) used.add(m[1]);
    for (const m of html.matchAll(/data-i18n-attr="([^"]+)"/g)) {
      for (const pair of m[1].split(';')) used.add(pair.split(':')[1].trim());
    }
    for (const file of ['demo.js', 'patient-screen.js']) {
      const js = fs.readFileSync(path.join(CLIENT, 'demo', file), 'utf8');
      // Every quoted literal that looks like a key of the dictionaries (`prefix.name`).
      for (const m of js.matchAll(/'([a-z]+(?:\.[a-z_]+)+)'/g)) {
        if (prefixes.has(m[1].split('.')[0])) used.add(m[1]);
      }
    }
    expect(used.size).toBeGreaterThan(100);
    expect([...used].filter((k) => !(k in en))).toEqual([]);
  });

  it('has every key the patient view asks for (PATIENT_VIEW_KEYS in client/demo/patient-view.js)', () => {
    // The module is a browser ES module: its key lists are read from the source (GUIDANCE_CODES, VERDICT_RESULTS,
    // OWN_KEYS), as PATIENT_VIEW_KEYS puts them together.
    const source = fs.readFileSync(path.join(CLIENT, 'demo', 'patient-view.js'), 'utf8');
    const list = (name: string) => {
      const body = new RegExp(`const ${name} = (?:Object\\.freeze\\()?\\[([\\s\\S]*?)\\]`).exec(source);
      expect({ name, found: Boolean(body) }).toEqual({ name, found: true });
      return [...body![1].matchAll(/'([a-z_.]+)'/g)].map((m) => m[1]);
    };
    // PATIENT_VIEW_KEYS is made of these three lists and nothing else.
    const whole = /PATIENT_VIEW_KEYS = Object\.freeze\(\[([\s\S]*?)\]\);/.exec(source);
    expect([...whole![1].matchAll(/\.\.\.([A-Z_]+)/g)].map((m) => m[1]).sort()).toEqual([
      'GUIDANCE_CODES',
      'OWN_KEYS',
      'VERDICT_RESULTS',
    ]);
    expect(whole![1].replace(/\.\.\.[A-Z_]+(\.map\([^)]*\) => `[a-z_.]+\$\{[a-z]\}`\))?,/g, '').trim()).toBe('');
    const keys = [
      ...list('GUIDANCE_CODES').map((c) => `guidance.${c}`),
      ...list('VERDICT_RESULTS').map((r) => `patient_view.verdict.${r}`),
      ...list('OWN_KEYS'),
    ];
    expect(keys.length).toBeGreaterThan(30);
    expect(keys).toEqual(
      expect.arrayContaining(['guidance.blink_again', 'patient_view.verdict.match', 'patient_view.countdown']),
    );
    expect(keys.filter((k) => !(k in en))).toEqual([]);
    // The patient hears no reason: a spoof and a plain no-match are told the same words, in every language.
    for (const lang of languages) {
      expect(dicts[lang]['patient_view.verdict.spoof_suspected']).toBe(dicts[lang]['patient_view.verdict.no_match']);
    }
  });

  it('keeps the client module plain English: its translations live in the dictionaries', () => {
    const client = fs.readFileSync(path.join(CLIENT, 'faceid-client.js'), 'utf8');
    expect(client).not.toMatch(/[\u0400-\u04FF]/); // no Cyrillic (Kazakh or Russian) glued into its tables
    // The client's English tables are en.json's texts (the browser test compares them as the module exports them).
    const tables: Array<[string, string]> = [
      ['GUIDANCE_MESSAGES', 'guidance'],
      ['VERDICT_MESSAGES', 'verdict'],
      ['REASON_MESSAGES', 'reason'],
    ];
    for (const [table, prefix] of tables) {
      const body = new RegExp(`export const ${table} = Object\\.freeze\\(\\{([\\s\\S]*?)\\n\\}\\);`).exec(client);
      expect({ table, found: Boolean(body) }).toEqual({ table, found: true });
      const entries = [...body![1].matchAll(/^ {2}([a-z_]+): (['"])(.+)\2,$/gm)].map((m) => [
        m[1],
        m[3].replace(/\\'/g, "'"),
      ]);
      expect(entries.length).toBeGreaterThan(5);
      for (const [code, text] of entries)
        expect({ key: `${prefix}.${code}`, text }).toEqual({ key: `${prefix}.${code}`, text: en[`${prefix}.${code}`] });
    }
  });
});
