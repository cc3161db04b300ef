import { Logger } from '@nestjs/common';
import { DevSmsOutbox } from './dev-sms.outbox';
import { maskIin } from './sms-gateway';

describe('DevSmsOutbox', () => {
  beforeAll(() => Logger.overrideLogger(false));

  it('keeps the last CAPACITY messages, oldest first', async () => {
    const outbox = new DevSmsOutbox();
    for (let i = 0; i < DevSmsOutbox.CAPACITY + 5; i++) {
      await outbox.send({ iin: '900101300027', text: `message ${i}`, reference: `s${i}` });
    }
    const list = outbox.list();
    expect(list).toHaveLength(DevSmsOutbox.CAPACITY);
    expect(list[0].reference).toBe('s5');
    expect(list[list.length - 1].text).toBe(`message ${DevSmsOutbox.CAPACITY + 4}`);
  });

  it('masks all but the last four digits of an IIN', () => {
    expect(maskIin('900101300027')).toBe('********0027');
  });
});
