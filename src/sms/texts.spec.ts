import { smsText } from './texts';

describe('smsText', () => {
  const input = { code: '042137', clinicName: 'Городская поликлиника №5', ttlSeconds: 300 };

  it('identification: Kazakh then Russian, the clinic named, the code, whom to tell, how long it lasts', () => {
    const [kk, ru] = smsText('identification', input).split('\n');
    expect(kk).toBe('Городская поликлиника №5: қабылдаудағы сәйкестендіру коды 042137. Оны тек қабылдаудағы дәрігерге айтыңыз. 5 минут жарамды.');
    expect(ru).toBe('Городская поликлиника №5: код идентификации на приёме 042137. Сообщите его только врачу на приёме. Действует 5 мин.');
  });

  it('enrollment: says the code confirms a new reference photo, and to keep it if the patient did not agree', () => {
    const text = smsText('enrollment', { ...input, ttlSeconds: 90 });
    expect(text).toContain('042137 коды');
    expect(text).toContain('подтверждает новое эталонное фото');
    expect(text).toContain('Если вы не согласны, никому не сообщайте код');
    expect(text).toContain('90 секунд');
    expect(text).toContain('90 сек.');
  });

  it('shortens a long clinic name and never writes English', () => {
    const text = smsText('identification', { ...input, clinicName: `  ${'Поликлиника '.repeat(10)}  ` });
    expect(text.split('\n')[0].indexOf(':')).toBeLessThanOrEqual(40);
    expect(text).not.toMatch(/[A-Za-z]/);
  });
});
