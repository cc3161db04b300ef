import { ConfigError, loadConfig } from './config';
import { clientAddress, compileTrustedProxies, parseTrustedProxies } from './proxies';

describe('TRUSTED_PROXIES', () => {
  it('parses addresses, CIDR ranges and range names, normalised; refuses anything else by position', () => {
    expect(parseTrustedProxies(' Loopback, 10.0.0.0/8,fd00::/8 , 192.168.1.10, ::ffff:10.1.2.3, loopback')).toEqual([
      'loopback',
      '10.0.0.0/8',
      'fd00::/8',
      '192.168.1.10',
      '10.1.2.3',
    ]);
    expect(parseTrustedProxies('')).toEqual([]);
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'proxy.clinic.kz', '10.0.0.0/8/1', '300.1.1.1', 'everything']) {
      expect(parseTrustedProxies(`loopback,${bad}`)).toMatch(/^entry 2 is not/);
    }
  });

  it('trusts exactly the listed peers, IPv4 peers of dual-stack sockets included', () => {
    const trusted = compileTrustedProxies(['loopback', '10.0.0.0/8', '2001:db8::1']);
    for (const a of [
      '127.0.0.1',
      '127.9.9.9',
      '::1',
      '::ffff:127.0.0.1',
      '10.200.0.1',
      '::ffff:10.0.0.5',
      '2001:db8::1',
    ]) {
      expect({ a, trusted: trusted(a) }).toEqual({ a, trusted: true });
    }
    for (const a of ['11.0.0.1', '192.168.0.1', '2001:db8::2', 'unknown', '', 'not an address']) {
      expect({ a, trusted: trusted(a) }).toEqual({ a, trusted: false });
    }
    expect(compileTrustedProxies([])('127.0.0.1')).toBe(false);
    const named = compileTrustedProxies(['uniquelocal', 'linklocal']);
    expect(['10.1.1.1', '172.16.0.1', '192.168.5.5', 'fd12::1', '169.254.1.1', 'fe80::1'].every(named)).toBe(true);
    expect(named('8.8.8.8')).toBe(false);
  });

  it('takes the client from X-Forwarded-For only through trusted peers, rightmost untrusted address first', () => {
    const trusted = compileTrustedProxies(['loopback', '10.0.0.0/8']);
    expect(clientAddress('127.0.0.1', '203.0.113.7', trusted)).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', '198.51.100.1, 203.0.113.7', trusted)).toBe('203.0.113.7'); // the leftmost is the client's claim
    expect(clientAddress('127.0.0.1', ['203.0.113.7', '10.0.0.2'], trusted)).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', '203.0.113.7, 10.0.0.2, 127.0.0.1', trusted)).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', undefined, trusted)).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', '10.0.0.9', trusted)).toBe('10.0.0.9'); // all trusted: the leftmost
    expect(clientAddress('192.0.2.1', '203.0.113.7', trusted)).toBe('192.0.2.1'); // an untrusted peer's header is ignored
    expect(clientAddress(undefined, undefined, trusted)).toBe('unknown');
    expect(clientAddress('127.0.0.1', '203.0.113.7', compileTrustedProxies([]))).toBe('127.0.0.1');
  });

  it('is a setting: none by default, bad values named', () => {
    expect(loadConfig({}).TRUSTED_PROXIES).toEqual([]);
    expect(loadConfig({ TRUSTED_PROXIES: 'loopback,10.0.0.0/8' }).TRUSTED_PROXIES).toEqual(['loopback', '10.0.0.0/8']);
    expect(() => loadConfig({ TRUSTED_PROXIES: 'proxy.local' })).toThrow(ConfigError);
    expect(() => loadConfig({ TRUSTED_PROXIES: 'proxy.local' })).toThrow(
      /TRUSTED_PROXIES="proxy.local": expected a comma list/,
    );
  });
});

describe('ADMIN_TOKEN', () => {
  it('is off by default; at least 32 printable characters; never echoed when refused', () => {
    expect(loadConfig({}).ADMIN_TOKEN).toBeUndefined();
    const token = 'A'.repeat(16) + 'b9-_~.+/='.repeat(2);
    expect(loadConfig({ ADMIN_TOKEN: token }).ADMIN_TOKEN).toBe(token);
    for (const bad of ['short', `${'x'.repeat(20)} ${'y'.repeat(20)}`]) {
      let err: unknown;
      try {
        loadConfig({ ADMIN_TOKEN: bad });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain('ADMIN_TOKEN: expected at least 32');
      expect((err as Error).message).not.toContain(bad);
    }
  });
});
