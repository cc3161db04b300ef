/**
 * What the patient's phone shows, in Kazakh then Russian (patients know e-government codes from 1414 in both; an
 * English text from an unknown sender reads as phishing). Each names the clinic and says whom the code is for.
 */
export type SmsPurpose = 'identification' | 'enrollment';

export interface SmsTextInput {
  code: string;
  /** The clinic's name as registered (shortened to keep the message to a few parts). */
  clinicName: string;
  ttlSeconds: number;
}

const MAX_CLINIC_NAME = 40;

function validity(seconds: number): { kk: string; ru: string } {
  if (seconds % 60 === 0) return { kk: `${seconds / 60} минут`, ru: `${seconds / 60} мин` };
  return { kk: `${seconds} секунд`, ru: `${seconds} сек` };
}

function clinic(name: string): string {
  const clean = name.replace(/\s+/g, ' ').trim();
  return clean.length > MAX_CLINIC_NAME ? `${clean.slice(0, MAX_CLINIC_NAME - 1)}…` : clean;
}

export function smsText(purpose: SmsPurpose, input: SmsTextInput): string {
  const { code } = input;
  const name = clinic(input.clinicName);
  const t = validity(input.ttlSeconds);
  if (purpose === 'identification') {
    return (
      `${name}: қабылдаудағы сәйкестендіру коды ${code}. Оны тек қабылдаудағы дәрігерге айтыңыз. ${t.kk} жарамды.\n` +
      `${name}: код идентификации на приёме ${code}. Сообщите его только врачу на приёме. Действует ${t.ru}.`
    );
  }
  return (
    `${name}: ${code} коды сізді тану үшін жаңа эталондық фотосуретті растайды. Келіспесеңіз, кодты ешкімге ` +
    `айтпаңыз. ${t.kk} жарамды.\n` +
    `${name}: код ${code} подтверждает новое эталонное фото для вашей идентификации. Если вы не согласны, никому не ` +
    `сообщайте код. Действует ${t.ru}.`
  );
}
