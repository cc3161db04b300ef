import { checkIin, iinCheckDigit, IinError, IinSchema, isValidIin, validateIin } from './iin';

/**
 * Builds an IIN from a date, century/sex digit and serial, with the check digit computed by iinCheckDigit (the next
 * serial when this one has none).
 */
function make(yymmdd: string, c: number, serial: string): string {
  for (let s = Number(serial); s < Number(serial) + 10; s++) {
    const first11 = `${yymmdd}${c}${String(s).padStart(4, '0')}`;
    const check = iinCheckDigit(first11);
    if (check !== null) return first11 + check;
  }
  throw new Error('no serial with a check digit');
}

const TODAY = new Date('2025-06-15T12:00:00Z');

describe('iinCheckDigit', () => {
  it('uses the weights 1..11 (worked by hand: 9+4+6+21+22 = 62 = 7 mod 11)', () => {
    expect(iinCheckDigit('90010130002')).toBe(7);
  });

  it('falls back to the weights 3..11,1,2 when the first sum is 10', () => {
    // 8+16+12+5+30+21+50+11 = 153 = 10 (mod 11); second: 24+32+18+7+40+27+5+2 = 155 = 1 (mod 11)
    expect(iinCheckDigit('88031530051')).toBe(1);
  });

  it('has no check digit when both sums are 10', () => {
    expect(iinCheckDigit('88031530050')).toBeNull();
  });

  it('refuses anything but 11 digits', () => {
    expect(() => iinCheckDigit('123')).toThrow();
  });
});

describe('checkIin', () => {
  it.each([
    ['a man born 1990-01-01', make('900101', 3, '0002'), 'male', '1990-01-01'],
    ['a woman born 1985-06-15', make('850615', 4, '0123'), 'female', '1985-06-15'],
    ['a leap day of the 2000s', make('040229', 5, '4567'), 'male', '2004-02-29'],
    ['a woman born in the 2000s', make('200101', 6, '0001'), 'female', '2020-01-01'],
    ['the 1800s', make('991231', 1, '0001'), 'male', '1899-12-31'],
    ['a check digit from the second weights', '880315300511', 'male', '1988-03-15'],
    ['born today', make('250615', 6, '0042'), 'female', '2025-06-15'],
  ])('accepts %s', (_name, iin, sex, date) => {
    const r = checkIin(iin, TODAY);
    expect(r).toEqual({ ok: true, iin, sex, birthDate: new Date(`${date}T00:00:00Z`) });
    expect(isValidIin(iin, TODAY)).toBe(true);
    expect(validateIin(iin, TODAY)).toBe(iin);
  });

  const valid = make('900101', 3, '0002');
  const wrongCheck = valid.slice(0, 11) + ((Number(valid[11]) + 1) % 10);

  it.each([
    ['too short', '90010130002', 'format'],
    ['too long', valid + '1', 'format'],
    ['letters', '90010130002a', 'format'],
    ['spaces around', ` ${valid}`, 'format'],
    ['non-ASCII digits', '٩٠٠١٠١٣٠٠٠٢٧', 'format'],
    ['a number, not a string', 900101300027, 'format'],
    ['century digit 0', make('900101', 0, '0002'), 'century'],
    ['century digit 7', make('900101', 7, '0002'), 'century'],
    ['month 13', make('901301', 3, '0002'), 'date'],
    ['month 00', make('900001', 3, '0002'), 'date'],
    ['day 00', make('900100', 3, '0002'), 'date'],
    ['February 30', make('900230', 3, '0002'), 'date'],
    ['February 29 of a common year', make('010229', 5, '0002'), 'date'],
    ['February 29, 1900 (not a leap year)', make('000229', 3, '0002'), 'date'],
    ['in the future', make('300101', 5, '0002'), 'future'],
    ['next month', make('250715', 5, '0002'), 'future'],
    ['a wrong check digit', wrongCheck, 'check_digit'],
    ['first 11 digits with no check digit', '880315300500', 'check_digit'],
  ])('rejects %s', (_name, iin, reason) => {
    const r = checkIin(iin, TODAY);
    expect(r).toEqual({ ok: false, reason, message: expect.any(String) });
    expect(isValidIin(iin, TODAY)).toBe(false);
  });

  it('never quotes the IIN in its messages', () => {
    for (const iin of ['900101300020', '901301300027', '300101500020', '9001013000']) {
      const r = checkIin(iin, TODAY);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.message).not.toContain(iin.slice(0, 6));
    }
  });

  it('validateIin throws an iin_invalid error', () => {
    let err: unknown;
    try {
      validateIin(wrongCheck, TODAY);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IinError);
    expect(err).toMatchObject({ code: 'iin_invalid', reason: 'check_digit' });
  });
});

describe('IinSchema', () => {
  it('accepts a valid IIN and its documented example', () => {
    expect(IinSchema.parse('880315300511')).toBe('880315300511');
    const example = (IinSchema.meta() as { examples: string[] }).examples[0];
    expect(isValidIin(example)).toBe(true);
  });

  it('tags a failure with the iin_invalid code', () => {
    const r = IinSchema.safeParse('123');
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]).toMatchObject({ code: 'custom', params: { code: 'iin_invalid', reason: 'format' } });
  });
});
