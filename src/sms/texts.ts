/**
 * What the patient's phone shows, in the clinic's languages (`faceid clinic sms-languages`): Kazakh then Russian by
 * default, or only one of them. Patients know e-government codes from 1414 in both; an English text from an unknown
 * sender reads as phishing. Each text names the clinic, says what the code is for, and whom not to tell it.
 *
 * Length: the texts are Cyrillic, so an SMS part holds 70 characters, 67 once a message takes several parts (see
 * smsParts). With the longest clinic name kept (MAX_CLINIC_NAME) each language's text fits 2 parts, both together 4.
 */
import { SMS_LANGUAGES, type SmsLanguages } from '../storage/ports';
import type { SmsPurpose } from './sms-gateway';

export { SMS_LANGUAGES, type SmsLanguages };

/** Both, Kazakh first: what a clinic sends unless its setting says otherwise. */
export const DEFAULT_SMS_LANGUAGES: SmsLanguages = 'kk+ru';

export interface SmsTextInput {
  code: string;
  /** The clinic's name as registered (shortened to MAX_CLINIC_NAME characters to keep the message to a few parts). */
  clinicName: string;
  /** The clinic's setting; default `kk+ru`. */
  languages?: SmsLanguages;
}

/** The longest clinic name an SMS carries; a longer one ends in "…" at this length. */
export const MAX_CLINIC_NAME = 32;

type Language = 'kk' | 'ru';

/** One language's text; `lead` is the clinic's name and a colon, or nothing when the clinic has no name. */
const TEXTS: Record<SmsPurpose, Record<Language, (lead: string, code: string) => string>> = {
  identification: {
    kk: (lead, code) =>
      `${lead}қабылдауға арналған код ${code}. Кодты қабылдаудағы дәрігер мен тіркеушіден басқа ешкімге айтпаңыз.`,
    ru: (lead, code) => `${lead}код ${code} для приёма. Не сообщайте его никому, кроме врача и регистратора на приёме.`,
  },
  enrollment: {
    kk: (lead, code) =>
      `${lead}${code} коды сізді тану үшін жаңа фотоны растайды. Келіспесеңіз, кодты ешкімге айтпаңыз.`,
    ru: (lead, code) =>
      `${lead}код ${code} подтвердит новое фото для идентификации. Если не согласны, никому не сообщайте код.`,
  },
};

const ORDER: Record<SmsLanguages, readonly Language[]> = { 'kk+ru': ['kk', 'ru'], kk: ['kk'], ru: ['ru'] };

/** The name as the SMS shows it: one line, spaces collapsed, no control characters, at most MAX_CLINIC_NAME long. */
export function clinicNameForSms(name: string): string {
  const clean = name
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (clean.length <= MAX_CLINIC_NAME) return clean;
  let cut = clean.slice(0, MAX_CLINIC_NAME - 1);
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1); // never half a surrogate pair
  return `${cut.replace(/[\s.,;:–—-]+$/u, '')}…`;
}

const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** The message: each of the clinic's languages on its own line, Kazakh first. */
export function smsText(purpose: SmsPurpose, input: SmsTextInput): string {
  const name = clinicNameForSms(input.clinicName);
  return ORDER[input.languages ?? DEFAULT_SMS_LANGUAGES]
    .map((language) => {
      const text = TEXTS[purpose][language](name ? `${name}: ` : '', input.code);
      return name ? text : capitalise(text);
    })
    .join('\n');
}

/**
 * How many SMS parts a message takes. Texts with any character outside the GSM 7-bit alphabet (every Cyrillic one)
 * are sent as UCS-2: 70 UTF-16 units in a single part, 67 a part once it takes several (the rest holds the header
 * that joins them). Others: 160, and 153 a part.
 */
export function smsParts(text: string): number {
  // The GSM 03.38 basic alphabet (the extension table's characters count as two; they are not needed here).
  const gsm = /^[@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&'()*+,\-./0-9:;<=>?¡A-ZÄÖÑÜ§¿a-zäöñüà]*$/.test(text);
  const [single, multi] = gsm ? [160, 153] : [70, 67];
  return text.length <= single ? 1 : Math.ceil(text.length / multi);
}
