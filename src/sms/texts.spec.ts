import { Logger, type LoggerService } from '@nestjs/common';
import { DevSmsOutbox } from './dev-sms.outbox';
import { clinicNameForSms, MAX_CLINIC_NAME, SMS_LANGUAGES, smsParts, smsText, type SmsLanguages } from './texts';

// The texts patients get, exactly, for each clinic setting; their length in SMS parts; the clinic's name as they show
// it; and the code kept out of the logs of the adapter that keeps them for development.

const code = '042137';
const clinicName = 'Городская поликлиника №5';

const KK_IDENTIFICATION =
  'Городская поликлиника №5: қабылдауға арналған код 042137. Кодты қабылдаудағы дәрігер мен тіркеушіден басқа ' +
  'ешкімге айтпаңыз.';
const RU_IDENTIFICATION =
  'Городская поликлиника №5: код 042137 для приёма. Не сообщайте его никому, кроме врача и регистратора на приёме.';
const KK_ENROLLMENT =
  'Городская поликлиника №5: 042137 коды сізді тану үшін жаңа фотоны растайды. Келіспесеңіз, кодты ешкімге айтпаңыз.';
const RU_ENROLLMENT =
  'Городская поликлиника №5: код 042137 подтвердит новое фото для идентификации. Если не согласны, никому не ' +
  'сообщайте код.';

describe('smsText', () => {
  it.each<[SmsLanguages | undefined, string, string]>([
    [undefined, `${KK_IDENTIFICATION}\n${RU_IDENTIFICATION}`, `${KK_ENROLLMENT}\n${RU_ENROLLMENT}`],
    ['kk+ru', `${KK_IDENTIFICATION}\n${RU_IDENTIFICATION}`, `${KK_ENROLLMENT}\n${RU_ENROLLMENT}`],
    ['kk', KK_IDENTIFICATION, KK_ENROLLMENT],
    ['ru', RU_IDENTIFICATION, RU_ENROLLMENT],
  ])('languages %s: the exact identification and enrollment texts', (languages, identification, enrollment) => {
    expect(smsText('identification', { code, clinicName, languages })).toBe(identification);
    expect(smsText('enrollment', { code, clinicName, languages })).toBe(enrollment);
  });

  it('knows the three settings, both languages first', () => {
    expect(SMS_LANGUAGES).toEqual(['kk+ru', 'kk', 'ru']);
  });

  it('keeps every text to 2 SMS parts a language, 4 for both, with the longest clinic name kept', () => {
    const longest = 'Ж'.repeat(200);
    for (const purpose of ['identification', 'enrollment'] as const) {
      const kk = smsText(purpose, { code, clinicName: longest, languages: 'kk' });
      const ru = smsText(purpose, { code, clinicName: longest, languages: 'ru' });
      expect(kk.startsWith(`${'Ж'.repeat(MAX_CLINIC_NAME - 1)}…: `)).toBe(true);
      expect(smsParts(kk)).toBeLessThanOrEqual(2);
      expect(smsParts(ru)).toBeLessThanOrEqual(2);
      expect(smsParts(smsText(purpose, { code, clinicName: longest, languages: 'kk+ru' }))).toBeLessThanOrEqual(4);
    }
  });

  it('counts SMS parts as phones do: 70 Cyrillic characters in one part, 67 a part beyond; 160 and 153 in Latin', () => {
    expect(smsParts('ж'.repeat(70))).toBe(1);
    expect(smsParts('ж'.repeat(71))).toBe(2);
    expect(smsParts('ж'.repeat(134))).toBe(2);
    expect(smsParts('ж'.repeat(135))).toBe(3);
    expect(smsParts('a'.repeat(160))).toBe(1);
    expect(smsParts('a'.repeat(161))).toBe(2);
    expect(smsParts(`${'a'.repeat(100)}қ`)).toBe(2); // one Kazakh letter makes the whole message UCS-2
  });

  it('shortens the clinic name: one line, spaces collapsed, at most MAX_CLINIC_NAME characters ending in …', () => {
    expect(clinicNameForSms('  Городская\n\tполиклиника   №5 ')).toBe('Городская поликлиника №5');
    expect(clinicNameForSms('Поликлиника\u0007 №1\u200b')).toBe('Поликлиника №1');
    const long = 'ГКП на ПХВ «Городская поликлиника №11» г. Алматы';
    expect(clinicNameForSms(long)).toBe('ГКП на ПХВ «Городская поликлини…');
    expect(clinicNameForSms(long)).toHaveLength(MAX_CLINIC_NAME);
    // No space or punctuation left before the ellipsis, and never half a character.
    expect(clinicNameForSms(`${'а'.repeat(MAX_CLINIC_NAME - 3)}, бв`)).toBe(`${'а'.repeat(MAX_CLINIC_NAME - 3)}…`);
    expect(clinicNameForSms(`${'а'.repeat(MAX_CLINIC_NAME - 2)}😀😀`)).toBe(`${'а'.repeat(MAX_CLINIC_NAME - 2)}…`);
    const text = smsText('identification', { code, clinicName: long, languages: 'ru' });
    expect(text).toBe(
      'ГКП на ПХВ «Городская поликлини…: код 042137 для приёма. Не сообщайте его никому, кроме врача и регистратора на ' +
        'приёме.',
    );
  });

  it('a clinic without a name: no empty prefix, the text starts with a capital', () => {
    expect(smsText('identification', { code, clinicName: '  ', languages: 'ru' })).toBe(
      'Код 042137 для приёма. Не сообщайте его никому, кроме врача и регистратора на приёме.',
    );
    expect(smsText('enrollment', { code, clinicName: '', languages: 'kk' })).toMatch(/^042137 коды/);
  });

  it('never writes English, and holds the code once a language', () => {
    for (const purpose of ['identification', 'enrollment'] as const) {
      const text = smsText(purpose, { code, clinicName });
      expect(text).not.toMatch(/[A-Za-z]/);
      expect(text.split(code)).toHaveLength(3);
    }
  });
});

describe('the code stays out of the logs', () => {
  const lines: string[] = [];
  const capture: LoggerService = {
    log: (m: unknown) => void lines.push(String(m)),
    error: (m: unknown) => void lines.push(String(m)),
    warn: (m: unknown) => void lines.push(String(m)),
    debug: (m: unknown) => void lines.push(String(m)),
    verbose: (m: unknown) => void lines.push(String(m)),
    fatal: (m: unknown) => void lines.push(String(m)),
  };
  beforeAll(() => Logger.overrideLogger(capture));
  afterAll(() => Logger.overrideLogger(false));

  it.each(SMS_LANGUAGES)(
    'development outbox, %s: notes each message (IIN masked) but never its text or code',
    async (languages) => {
      lines.length = 0;
      const outbox = new DevSmsOutbox();
      const iin = '900101300027';
      for (const purpose of ['identification', 'enrollment'] as const) {
        await outbox.send({
          iin,
          text: smsText(purpose, { code, clinicName, languages }),
          reference: `ref-${purpose}`,
          purpose,
        });
      }
      expect(lines).toHaveLength(2);
      expect(lines[0]).toContain('********0027');
      expect(lines[1]).toContain('enrollment confirmation');
      const logged = lines.join('\n');
      expect(logged).not.toContain(code);
      expect(logged).not.toContain(iin);
      expect(logged).not.toMatch(/[А-Яа-яӘәҒғҚқҢңӨөҰұҮүҺһІі]/); // no part of any text
    },
  );
});
