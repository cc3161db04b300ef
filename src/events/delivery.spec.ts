import { EventEmitter } from 'node:events';
import { KeyRing } from '../keyring';
import type { StoredEvent } from '../storage/ports';
import { EVENT_EXAMPLES } from './schema-docs';
import { HIGH_WATER_BYTES, Subscriber, type SubscriberSocket } from './events.socket';
import { DestinationPolicy } from './destination';
import { loadConfig } from '../config';
import type { MetricsService } from '../metrics/metrics.service';
import type { EventRepository, WebhookRepository, WebhookSubscription } from '../storage/ports';
import type { StorageSignals } from '../storage/signals';
import type { HostResolver } from './host-resolver';
import { retryDelayMs, WebhookDispatcher } from './webhook-dispatcher';
import { WebhookSecrets } from './webhook-secrets';
import { checkWebhookUrl, hostAllowed } from './webhooks.service';
import { networkDetail } from './webhook-transport';

/** Any host; plain http as given. */
const open_ = (allowHttp: boolean) => ({ allowHttp, allowedHosts: [] });

describe('retryDelayMs', () => {
  it('is full jitter over base * 2^failures, capped at max', () => {
    expect(retryDelayMs(0, 50, 10_000, () => 0.999999)).toBe(49);
    expect(retryDelayMs(3, 50, 10_000, () => 0.5)).toBe(200);
    expect(retryDelayMs(30, 50, 10_000, () => 0.5)).toBe(5000);
    expect(retryDelayMs(2000, 50, 10_000, () => 1 - 1e-9)).toBeLessThan(10_000);
    expect(retryDelayMs(5, 50, 10_000, () => 0)).toBe(0);
    const samples = Array.from({ length: 200 }, () => retryDelayMs(4, 100, 60_000));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...samples)).toBeLessThan(1600);
    expect(new Set(samples).size).toBeGreaterThan(50); // spread out, not in step
  });
});

describe('WebhookDispatcher.waitForPasses', () => {
  /** A dispatcher whose claims the test hands out and whose delivery steps wait on the test (no network, no poll). */
  function dispatcher() {
    const claims: WebhookSubscription[][] = [];
    const held: Array<(events: StoredEvent[]) => void> = [];
    const webhooks = {
      claimDue: async () => claims.shift() ?? [],
      release: async () => true,
    } as unknown as WebhookRepository;
    const events = {
      after: () => new Promise<StoredEvent[]>((resolve) => held.push(resolve)),
    } as unknown as EventRepository;
    const signals = { onEvents: () => () => undefined, onResync: () => () => undefined } as unknown as StorageSignals;
    const d = new WebhookDispatcher(
      loadConfig({ EVENTS_POLL_MS: '60000' }),
      webhooks,
      events,
      {} as WebhookSecrets,
      {} as MetricsService,
      {} as HostResolver,
      signals,
    );
    const sub = (i: number) => ({ id: `sub-${i}`, clinicId: 'c', cursorSeq: 0, failures: 0 }) as WebhookSubscription;
    return { d, claims, held, sub };
  }
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  const watch = (p: Promise<void>) => {
    const state = { done: false, error: null as Error | null };
    p.then(
      () => (state.done = true),
      (e: Error) => (state.error = e),
    );
    return state;
  };

  it('completes a pass only once the delivery steps in flight have settled', async () => {
    const { d, claims, held, sub } = dispatcher();
    d.onApplicationBootstrap();
    await settle();
    const before = d.passes;
    claims.push([sub(1)]);
    const waiting = watch(d.waitForPasses(1));
    await settle();
    expect(d.busy).toBe(1); // claimed: its step waits on the test
    expect(waiting.done).toBe(false);
    held.shift()!([]); // nothing after its cursor: released, idle
    await settle();
    expect(waiting.done).toBe(true);
    expect(d.passes).toBeGreaterThan(before);
    await d.beforeApplicationShutdown();
  });

  it('does not count a pass that had no room for everything due', async () => {
    const { d, claims, held, sub } = dispatcher();
    d.onApplicationBootstrap();
    await settle();
    claims.push(Array.from({ length: 8 }, (_, i) => sub(i))); // as many as it has room for: more may be due
    const waiting = watch(d.waitForPasses(1));
    await settle();
    expect(d.busy).toBe(8);
    expect(waiting.done).toBe(false);
    while (held.length) held.shift()!([]);
    await settle(); // the freed room wakes it: a pass that claims nothing more completes
    expect(d.busy).toBe(0);
    expect(waiting.done).toBe(true);
    await d.beforeApplicationShutdown();
  });

  it('counts only passes that begin after the call, and rejects when the dispatcher stops', async () => {
    const { d, claims, held, sub } = dispatcher();
    d.onApplicationBootstrap();
    await settle();
    claims.push([sub(1)]);
    const first = watch(d.waitForPasses(1));
    await settle();
    // The pass in progress (its step held) began before this call: it does not count for it.
    const second = watch(d.waitForPasses(2));
    held.shift()!([]);
    await settle();
    expect(first.done).toBe(true);
    expect(second.done).toBe(true); // two more passes ran at once, without waiting for the poll
    claims.push([sub(2)]);
    const stopped = watch(d.waitForPasses(1));
    await settle();
    const shutdown = d.beforeApplicationShutdown();
    await settle();
    expect(stopped.error?.message).toMatch(/stopped/);
    held.shift()?.([]);
    await shutdown;
    await expect(d.waitForPasses(1)).rejects.toThrow(/not running/);
  });
});

describe("networkDetail (for the operator's log only)", () => {
  it('names a network failure by its code, from the error or its cause', () => {
    expect(networkDetail(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }))).toBe(
      'ECONNREFUSED',
    );
    expect(networkDetail({ code: 'ENOTFOUND' })).toBe('ENOTFOUND');
    expect(networkDetail({ cause: { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' } })).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(networkDetail({ code: 'connect ECONNREFUSED 10.0.0.1:443' })).toBe('network_error'); // never free text
    expect(networkDetail(new Error('something else'))).toBe('network_error');
  });
});

describe('checkWebhookUrl', () => {
  it('wants https unless http is allowed, and no credentials', () => {
    expect(checkWebhookUrl('https://mis.example/hooks#x', open_(false))).toBe('https://mis.example/hooks');
    expect(() => checkWebhookUrl('http://mis.example/hooks', open_(false))).toThrow(/https/);
    expect(() => checkWebhookUrl('http://127.0.0.1:8080/h', open_(true))).toThrow(
      expect.objectContaining({ code: 'webhook_destination_refused', details: { rule: 'loopback' } }),
    );
    const local = { ...open_(true), destinations: new DestinationPolicy(['127.0.0.1']) };
    expect(checkWebhookUrl('http://127.0.0.1:8080/h', local)).toBe('http://127.0.0.1:8080/h');
    expect(() => checkWebhookUrl('ftp://mis.example/', open_(true))).toThrow();
    expect(() => checkWebhookUrl('/relative', open_(true))).toThrow();
    expect(() => checkWebhookUrl('https://user:pw@mis.example/', open_(false))).toThrow(/credentials/);
    try {
      checkWebhookUrl('http://secret-host.example/', open_(false));
    } catch (err) {
      expect((err as { code: string }).code).toBe('webhook_url_invalid');
      expect((err as Error).message).not.toContain('secret-host');
    }
  });

  it('keeps to WEBHOOK_ALLOWED_HOSTS when it is set', () => {
    const policy = { allowHttp: false, allowedHosts: ['mis.clinic.kz', '*.emr.kz'] };
    expect(checkWebhookUrl('https://mis.clinic.kz/hooks', policy)).toBe('https://mis.clinic.kz/hooks');
    expect(checkWebhookUrl('https://a.b.emr.kz/h', policy)).toBe('https://a.b.emr.kz/h');
    for (const url of [
      'https://emr.kz/h',
      'https://evil-emr.kz/h',
      'https://10.0.0.5/h',
      'https://mis.clinic.kz.evil.kz/h',
    ]) {
      expect(() => checkWebhookUrl(url, policy)).toThrow(/WEBHOOK_ALLOWED_HOSTS/);
    }
    expect(hostAllowed('MIS.Clinic.KZ.', ['mis.clinic.kz'])).toBe(true);
    expect(hostAllowed('anything', [])).toBe(true);
  });
});

describe('WebhookSecrets', () => {
  const secrets = new WebhookSecrets(new KeyRing([{ id: 'k1', key: Buffer.alloc(32, 7) }]));

  it('seal the key with the key ring, bound to the clinic and URL', () => {
    const key = Buffer.alloc(32, 0xab);
    const sealed = secrets.seal('clinic-a', 'https://mis.example/h', key);
    expect(sealed.keyId).toBe('k1');
    expect(sealed.ciphertext.equals(key)).toBe(false);
    const sub = { clinicId: 'clinic-a', url: 'https://mis.example/h', secret: sealed };
    expect(secrets.open(sub).equals(key)).toBe(true);
    const tampered = expect.objectContaining({ code: 'unseal_failed' });
    expect(() => secrets.open({ ...sub, clinicId: 'clinic-b' })).toThrow(tampered);
    expect(() => secrets.open({ ...sub, url: 'https://evil.example/h' })).toThrow(tampered);
    const other = new WebhookSecrets(new KeyRing([{ id: 'k2', key: Buffer.alloc(32, 8) }]));
    expect(() => other.open(sub)).toThrow(expect.objectContaining({ code: 'key_unknown' }));
  });
});

/** A socket that queues what is sent and "writes it out" only when told to. */
class SlowSocket extends EventEmitter implements SubscriberSocket {
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: string[] = [];
  private readonly pending: Array<() => void> = [];

  send(data: string, cb?: (err?: Error) => void): void {
    this.sent.push(data);
    this.bufferedAmount += Buffer.byteLength(data);
    if (cb) this.pending.push(() => cb());
  }

  /** The peer read everything. */
  drain(): void {
    this.bufferedAmount = 0;
    for (const cb of this.pending.splice(0)) cb();
  }

  close(): void {
    this.readyState = 3;
    this.emit('close');
  }
}

describe('Subscriber', () => {
  const example = EVENT_EXAMPLES['identification.verdict'];
  /** A clinic stream of n events with ~20 KB of padding each in the fake payload, to fill buffers fast. */
  function stream(n: number) {
    const events: StoredEvent[] = Array.from({ length: n }, (_, i) => ({
      id: `e${i + 1}`,
      clinicId: 'c',
      seq: i + 1,
      type: 'identification.verdict',
      payload: { ...example, id: `e${i + 1}`, seq: i + 1, appointmentId: 'x'.repeat(20_000) },
      createdAt: new Date(),
    }));
    const reads: number[] = [];
    const repo = {
      after: async (_clinic: string, afterSeq: number, limit: number) => {
        reads.push(afterSeq);
        return events.filter((e) => e.seq > afterSeq).slice(0, limit);
      },
    };
    return { events, reads, repo };
  }
  const tick = () => new Promise((r) => setImmediate(r));

  it('sends in seq order without gaps and stops reading while the client is behind', async () => {
    const { reads, repo } = stream(250);
    const socket = new SlowSocket();
    const sub = new Subscriber(socket, { clinicId: 'c', kind: 'mis', id: 'm' }, 0, repo, (err) => {
      throw err;
    });
    sub.wake();
    for (let i = 0; i < 5; i++) await tick();
    // One batch of 100 x 20 KB is above the high-water mark: it waits for that batch to be written out.
    expect(socket.bufferedAmount).toBeGreaterThan(HIGH_WATER_BYTES);
    expect(reads).toEqual([0]);
    expect(socket.sent).toHaveLength(100);
    sub.wake(); // a wake while waiting reads nothing more
    for (let i = 0; i < 5; i++) await tick();
    expect(reads).toEqual([0]);
    socket.drain();
    for (let i = 0; i < 5; i++) await tick();
    expect(reads).toEqual([0, 100]);
    socket.drain();
    for (let i = 0; i < 5; i++) await tick();
    socket.drain();
    for (let i = 0; i < 5; i++) await tick();
    const seqs = socket.sent.map((m) => JSON.parse(m).event.seq);
    expect(seqs).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    expect(sub.seq).toBe(250);
  });

  it('starts after its position and stops when the socket closes', async () => {
    const { repo } = stream(10);
    const socket = new SlowSocket();
    const sub = new Subscriber(socket, { clinicId: 'c', kind: 'workstation', id: 'w' }, 7, repo, () => undefined);
    sub.wake();
    for (let i = 0; i < 5; i++) await tick();
    expect(socket.sent.map((m) => JSON.parse(m))).toEqual(
      [8, 9, 10].map((seq) => ({ type: 'event', event: expect.objectContaining({ seq }) })),
    );
    socket.close();
    sub.wake();
    await tick();
    expect(socket.sent).toHaveLength(3);
  });
});
