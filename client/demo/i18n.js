// The desk's languages: Kazakh, Russian and English. The texts live in one JSON file per language,
// client/locales/<lang>.json (served at /client/locales/<lang>.json): flat keys, `{name}` placeholders. Every file
// has the same keys (test/locales.test.ts checks it). Plain ES module, no dependencies; the demo page and the
// patient-facing view both use it.
//
//   import { loadLanguage, t } from '/demo/i18n.js';
//   await loadLanguage('kk');
//   t('kk', 'code.wrong', { left: 3 });   // "Код қате. Қалған әрекет саны: 3."
//
// Adding a language: add client/locales/<lang>.json with every key of en.json, and one line to LANGUAGES below.

/** The languages the page offers, in the order of the switch; `name` is the language's own name for itself. */
export const LANGUAGES = Object.freeze([
  Object.freeze({ code: 'kk', name: 'Қазақша' }),
  Object.freeze({ code: 'ru', name: 'Русский' }),
  Object.freeze({ code: 'en', name: 'English' }),
]);

/** Used when nothing the browser prefers is offered, and for a key a dictionary lacks. */
export const FALLBACK_LANGUAGE = 'en';

/** Where the chosen language is remembered (localStorage). */
export const LANGUAGE_STORAGE_KEY = 'faceid.demo.lang';

const LOCALES_URL = '/client/locales/';
const dictionaries = new Map();
const loading = new Map();

function isOffered(code) {
  return LANGUAGES.some((l) => l.code === code);
}

/**
 * The language to show: the one remembered in localStorage, else the first of the browser's preferences
 * (navigator.languages, e.g. ['ru-KZ', 'en']) that the page offers, by its primary tag, else English.
 */
export function preferredLanguage({
  storage = globalThis.localStorage,
  languages = globalThis.navigator?.languages,
} = {}) {
  try {
    const saved = storage && storage.getItem(LANGUAGE_STORAGE_KEY);
    if (saved && isOffered(saved)) return saved;
  } catch {
    // storage refused (privacy settings): go by the browser's preference
  }
  for (const tag of Array.isArray(languages) ? languages : []) {
    const primary = String(tag).toLowerCase().split('-')[0];
    if (isOffered(primary)) return primary;
  }
  return FALLBACK_LANGUAGE;
}

/** Remembers the receptionist's choice for the next visit of the page. */
export function rememberLanguage(code, storage = globalThis.localStorage) {
  if (!isOffered(code)) return;
  try {
    storage.setItem(LANGUAGE_STORAGE_KEY, code);
  } catch {
    // not remembered; the page still switches
  }
}

/**
 * Loads a language's dictionary (once; later calls reuse it), and English, which stands in for a missing key.
 * Resolves with the dictionary. `base`: where the JSON files are served.
 */
export async function loadLanguage(code, { base = LOCALES_URL } = {}) {
  if (!isOffered(code)) throw new RangeError(`Language "${code}" is not offered (LANGUAGES in i18n.js).`);
  const wanted = code === FALLBACK_LANGUAGE ? [code] : [code, FALLBACK_LANGUAGE];
  await Promise.all(wanted.map((c) => fetchDictionary(c, base)));
  return dictionaries.get(code);
}

function fetchDictionary(code, base) {
  if (dictionaries.has(code)) return Promise.resolve(dictionaries.get(code));
  if (!loading.has(code)) {
    const p = fetch(`${base}${code}.json`, { credentials: 'omit' })
      .then((res) => {
        if (!res.ok) throw new Error(`The ${code} dictionary could not be loaded (HTTP ${res.status}).`);
        return res.json();
      })
      .then((dict) => {
        dictionaries.set(code, Object.freeze({ ...dict }));
        return dictionaries.get(code);
      })
      .finally(() => loading.delete(code));
    loading.set(code, p);
  }
  return loading.get(code);
}

/** Whether a key exists (in English, which has them all). */
export function has(key) {
  const en = dictionaries.get(FALLBACK_LANGUAGE);
  return Boolean(en && Object.prototype.hasOwnProperty.call(en, key));
}

/**
 * The text of `key` in `lang`, with `{name}` placeholders filled from `vars` (a missing variable stays as
 * `{name}`). Falls back to English, then to the key itself, so a missing text shows as its key rather than as
 * nothing. Synchronous: load the language first (`loadLanguage`).
 */
export function t(lang, key, vars = {}) {
  const own = dictionaries.get(lang);
  const en = dictionaries.get(FALLBACK_LANGUAGE);
  const text = (own && own[key]) || (en && en[key]) || key;
  return format(text, vars);
}

/** Fills `{name}` placeholders. */
export function format(text, vars = {}) {
  return String(text).replace(/\{([a-zA-Z0-9_]+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(vars, name) && vars[name] !== undefined && vars[name] !== null
      ? String(vars[name])
      : whole,
  );
}

/**
 * The client module's text tables in `lang` (identify()'s `messages`, `verdictMessages` and `reasonMessages`
 * options), from the keys `guidance.*`, `verdict.*` and `reason.*`.
 */
export function clientTexts(lang) {
  const pick = (prefix) => {
    const out = {};
    const en = dictionaries.get(FALLBACK_LANGUAGE) || {};
    for (const key of Object.keys(en)) if (key.startsWith(prefix)) out[key.slice(prefix.length)] = t(lang, key);
    return out;
  };
  return { messages: pick('guidance.'), verdictMessages: pick('verdict.'), reasonMessages: pick('reason.') };
}
