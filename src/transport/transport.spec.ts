import { Inbox } from './transport';

describe('Inbox', () => {
  it('handles synchronous calls at once, in order', async () => {
    const seen: number[] = [];
    const inbox = new Inbox<number>((n) => {
      seen.push(n);
    });
    inbox.push(1);
    inbox.push(2);
    expect(seen).toEqual([1, 2]);
    await inbox.whenIdle();
  });

  it('holds the next message until the pending call has settled, then goes on in order', async () => {
    const seen: string[] = [];
    const pending: Array<() => void> = [];
    const inbox = new Inbox<number>((n) => {
      seen.push(`start ${n}`);
      return new Promise<void>((resolve) =>
        pending.push(() => {
          seen.push(`end ${n}`);
          resolve();
        }),
      );
    });
    inbox.push(1);
    inbox.push(2);
    inbox.push(3);
    expect(seen).toEqual(['start 1']);
    let idle = false;
    void inbox.whenIdle().then(() => (idle = true));
    for (let k = 0; k < 3; k++) {
      pending.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    expect(seen).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
    expect(idle).toBe(true);
  });

  it('goes on after a call whose promise rejected', async () => {
    const seen: number[] = [];
    const inbox = new Inbox<number>((n) => {
      seen.push(n);
      return n === 1 ? Promise.reject(new Error('x')) : undefined;
    });
    inbox.push(1);
    inbox.push(2);
    await inbox.whenIdle();
    expect(seen).toEqual([1, 2]);
  });
});
