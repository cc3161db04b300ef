import { createHmac } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { generateWebhookSecret, secretKey, sign, signatureHeaders, verify } from './signature';

// The test vector published with the Standard Webhooks specification: matching it means any of that
// specification's libraries verifies our deliveries.
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

describe('webhook signatures', () => {
  it('reproduce the Standard Webhooks test vector', () => {
    expect(sign(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body)).toBe(VECTOR.signature);
    expect(sign(VECTOR.secret, VECTOR.id, VECTOR.timestamp, Buffer.from(VECTOR.body))).toBe(VECTOR.signature);
    const headers = {
      'webhook-id': VECTOR.id,
      'webhook-timestamp': String(VECTOR.timestamp),
      'webhook-signature': VECTOR.signature,
    };
    expect(verify(VECTOR.secret, headers, VECTOR.body, { now: VECTOR.timestamp * 1000 })).toEqual({
      ok: true,
      id: VECTOR.id,
      timestamp: VECTOR.timestamp,
    });
  });

  it('secrets are whsec_ + base64 of 32 random bytes, and sign as an independent HMAC does', () => {
    const secrets = new Set(Array.from({ length: 20 }, generateWebhookSecret));
    expect(secrets.size).toBe(20);
    for (const s of secrets) {
      expect(s).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(secretKey(s)).toHaveLength(32);
    }
    const secret = [...secrets][0];
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    const h = signatureHeaders(secret, 'evt-1', '{"a":1}', 1700000000);
    expect(h).toEqual({
      'webhook-id': 'evt-1',
      'webhook-timestamp': '1700000000',
      'webhook-signature': 'v1,' + createHmac('sha256', key).update('evt-1.1700000000.{"a":1}').digest('base64'),
    });
  });

  it('refuse a changed body, id or timestamp, another secret, and stale or future timestamps', () => {
    const secret = generateWebhookSecret();
    const now = Date.now();
    const body = '{"type":"identification.verdict","seq":1}';
    const h = signatureHeaders(secret, 'evt-2', body, Math.floor(now / 1000));
    expect(verify(secret, h, body, { now }).ok).toBe(true);
    expect(verify(secret, h, body.replace('1', '2'), { now })).toEqual({ ok: false, reason: 'signature_mismatch' });
    expect(verify(secret, { ...h, 'webhook-id': 'evt-3' }, body, { now })).toEqual({
      ok: false,
      reason: 'signature_mismatch',
    });
    expect(verify(generateWebhookSecret(), h, body, { now })).toEqual({ ok: false, reason: 'signature_mismatch' });
    const ts = Number(h['webhook-timestamp']);
    const moved = { ...h, 'webhook-timestamp': String(ts + 1) };
    expect(verify(secret, moved, body, { now })).toEqual({ ok: false, reason: 'signature_mismatch' });
    expect(verify(secret, h, body, { now: now + 301_000 })).toEqual({ ok: false, reason: 'timestamp_too_old' });
    expect(verify(secret, h, body, { now: now - 301_000 })).toEqual({ ok: false, reason: 'timestamp_too_new' });
    expect(verify(secret, h, body, { now: now + 20_000, toleranceSeconds: 10 }).ok).toBe(false);
    expect(verify(secret, { 'webhook-id': 'evt-2' }, body)).toEqual({ ok: false, reason: 'missing_headers' });
    expect(verify(secret, { ...h, 'webhook-timestamp': '17e8' }, body)).toEqual({
      ok: false,
      reason: 'timestamp_invalid',
    });
  });

  it('accept any one of several signatures (secret rotation) and read fetch Headers too', () => {
    const oldSecret = generateWebhookSecret();
    const newSecret = generateWebhookSecret();
    const ts = Math.floor(Date.now() / 1000);
    const both = `${sign(oldSecret, 'e', ts, 'x')} v2,ignored ${sign(newSecret, 'e', ts, 'x')}`;
    const headers = new Headers({ 'webhook-id': 'e', 'webhook-timestamp': String(ts), 'webhook-signature': both });
    expect(verify(newSecret, headers, 'x').ok).toBe(true);
    expect(verify(oldSecret, headers, 'x').ok).toBe(true);
    expect(verify(generateWebhookSecret(), headers, 'x').ok).toBe(false);
    // A truncated signature is a mismatch, not a crash.
    headers.set('webhook-signature', sign(newSecret, 'e', ts, 'x').slice(0, 20));
    expect(verify(newSecret, headers, 'x')).toEqual({ ok: false, reason: 'signature_mismatch' });
  });

  it('refuse malformed secrets', () => {
    expect(() => secretKey('whsec_not base64!')).toThrow(TypeError);
    expect(() => secretKey('whsec_' + Buffer.alloc(8).toString('base64'))).toThrow(TypeError);
  });
});

// The reference implementation (the `standardwebhooks` package, a dev dependency only: see signature.ts for why we
// sign with our own) and ours must accept each other's deliveries, for text and raw bodies alike.
describe('interoperability with the standardwebhooks package', () => {
  const bodies = [
    '{"type":"identification.verdict","seq":1,"result":"match"}',
    // Kazakh and Russian text: multi-byte UTF-8, where a string/bytes mismatch would show.
    JSON.stringify({ type: 'patient.note', text: 'Науқас тексерілді / Пациент проверен' }),
    '',
  ];

  it('the package verifies what we sign, with the key as the dispatcher holds it (raw bytes)', () => {
    const secret = generateWebhookSecret();
    const wh = new Webhook(secret);
    for (const body of bodies) {
      const key = secretKey(secret);
      const headers = signatureHeaders(key, 'evt-interop', Buffer.from(body));
      key.fill(0); // as the dispatcher does after each delivery
      expect(wh.verify(body, headers, { jsonParse: false })).toBeUndefined();
      expect(wh.verify(Buffer.from(body), headers, { jsonParse: false })).toBeUndefined();
      expect(() => wh.verify(body + ' ', headers)).toThrow(WebhookVerificationError);
      expect(() => new Webhook(generateWebhookSecret()).verify(body, headers)).toThrow(WebhookVerificationError);
    }
    // And the published vector: both produce the same header value.
    expect(new Webhook(VECTOR.secret).sign(VECTOR.id, new Date(VECTOR.timestamp * 1000), VECTOR.body)).toBe(
      sign(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body),
    );
  });

  it('we verify what the package signs, from the whsec_ string or from raw key bytes', () => {
    const secret = generateWebhookSecret();
    const key = secretKey(secret);
    const now = Date.now();
    const ts = Math.floor(now / 1000);
    for (const wh of [new Webhook(secret), new Webhook(new Uint8Array(key), { format: 'raw' })]) {
      for (const body of bodies) {
        const headers = {
          'webhook-id': 'msg_interop',
          'webhook-timestamp': String(ts),
          'webhook-signature': wh.sign('msg_interop', new Date(ts * 1000), body),
        };
        expect(verify(secret, headers, body, { now })).toEqual({ ok: true, id: 'msg_interop', timestamp: ts });
        expect(verify(key, headers, Buffer.from(body), { now }).ok).toBe(true);
        expect(verify(secret, headers, body + ' ', { now })).toEqual({ ok: false, reason: 'signature_mismatch' });
        // Byte for byte the same header value as ours.
        expect(headers['webhook-signature']).toBe(sign(secret, 'msg_interop', ts, body));
      }
    }
    // A rotation list written by the package's signatures: any one valid entry is enough, in either position.
    const other = new Webhook(generateWebhookSecret());
    const ours = new Webhook(secret);
    const d = new Date(ts * 1000);
    for (const list of [
      `${other.sign('m', d, 'x')} ${ours.sign('m', d, 'x')}`,
      `${ours.sign('m', d, 'x')} ${other.sign('m', d, 'x')}`,
    ]) {
      const headers = { 'webhook-id': 'm', 'webhook-timestamp': String(ts), 'webhook-signature': list };
      expect(verify(secret, headers, 'x', { now }).ok).toBe(true);
      expect(ours.verify('x', headers, { jsonParse: false })).toBeUndefined();
    }
  });
});
