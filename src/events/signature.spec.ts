import { createHmac } from 'node:crypto';
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
