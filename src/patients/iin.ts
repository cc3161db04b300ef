import { z } from 'zod';

/**
 * The Kazakh individual identification number (IIN, ЖСН/ИИН): 12 digits.
 *   1-6  birth date YYMMDD
 *   7    century and sex: 1/2 = 1800s, 3/4 = 1900s, 5/6 = 2000s (odd = male, even = female)
 *   8-11 serial
 *   12   check digit: sum(d[i] * i) mod 11 for i = 1..11; if that is 10, the weights 3,4,5,6,7,8,9,10,11,1,2
 *        instead; if still 10, no valid IIN has these first 11 digits.
 * Messages never quote the IIN (it is personal data).
 */

export type IinReason = 'format' | 'century' | 'date' | 'future' | 'check_digit';

export type IinCheck =
  | { ok: true; iin: string; birthDate: Date; sex: 'male' | 'female' }
  | { ok: false; reason: IinReason; message: string };

const W1 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const W2 = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2];

const MESSAGES: Record<IinReason, string> = {
  format: 'An IIN is exactly 12 digits.',
  century: 'The 7th digit of an IIN (century and sex) must be 1 to 6.',
  date: 'Digits 1-6 of the IIN are not a real birth date.',
  future: 'The birth date in the IIN is in the future.',
  check_digit: 'The check digit (12th) of the IIN does not match.',
};

/** The check digit of the first 11 digits, or null when none exists (both weightings give 10). */
export function iinCheckDigit(first11: string): number | null {
  if (!/^[0-9]{11}$/.test(first11)) throw new Error('iinCheckDigit needs 11 digits.');
  const digits = [...first11].map(Number);
  const sum = (w: number[]) => digits.reduce((s, d, i) => s + d * w[i], 0) % 11;
  const first = sum(W1);
  if (first !== 10) return first;
  const second = sum(W2);
  return second === 10 ? null : second;
}

function fail(reason: IinReason): IinCheck {
  return { ok: false, reason, message: MESSAGES[reason] };
}

/** Checks format, birth date (real, not after `today`), century digit and check digit. */
export function checkIin(iin: unknown, today: Date = new Date()): IinCheck {
  if (typeof iin !== 'string' || !/^[0-9]{12}$/.test(iin)) return fail('format');
  const c = Number(iin[6]);
  if (c < 1 || c > 6) return fail('century');
  const year = (c <= 2 ? 1800 : c <= 4 ? 1900 : 2000) + Number(iin.slice(0, 2));
  const month = Number(iin.slice(2, 4));
  const day = Number(iin.slice(4, 6));
  const birth = new Date(Date.UTC(year, month - 1, day));
  // Date.UTC rolls over (Feb 30 -> Mar 2): a real date survives the round trip.
  if (
    month < 1 ||
    month > 12 ||
    birth.getUTCFullYear() !== year ||
    birth.getUTCMonth() !== month - 1 ||
    birth.getUTCDate() !== day
  ) {
    return fail('date');
  }
  const todayUtc = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate());
  // Kazakhstan is ahead of UTC: a child born "today" there may still be "tomorrow" in UTC, so allow one day.
  if (birth.getTime() > todayUtc + 24 * 3600 * 1000) return fail('future');
  if (iinCheckDigit(iin.slice(0, 11)) !== Number(iin[11])) return fail('check_digit');
  return { ok: true, iin, birthDate: birth, sex: c % 2 === 1 ? 'male' : 'female' };
}

export function isValidIin(iin: unknown, today?: Date): iin is string {
  return checkIin(iin, today).ok;
}

/** A rejected IIN: code `iin_invalid` (HTTP 400). */
export class IinError extends Error {
  readonly code = 'iin_invalid';

  constructor(
    readonly reason: IinReason,
    message: string,
  ) {
    super(message);
    this.name = 'IinError';
  }
}

/** Returns the IIN if valid, else throws an IinError (`iin_invalid`). */
export function validateIin(iin: unknown, today?: Date): string {
  const r = checkIin(iin, today);
  if (!r.ok) throw new IinError(r.reason, r.message);
  return r.iin;
}

/**
 * The IIN as a request field: a failure is answered with code `iin_invalid` (not the generic `invalid_request`).
 * The JSON Schema shows the 12-digit pattern; the date and check digit are checked too.
 */
export const IinSchema = z
  .string()
  .superRefine((value, ctx) => {
    const r = checkIin(value);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message, params: { code: 'iin_invalid', reason: r.reason } });
  })
  .meta({
    description: 'The patient’s IIN: 12 digits, a real birth date, a matching check digit.',
    pattern: '^[0-9]{12}$',
    examples: ['900101300027'],
  });
