import { loadConfig } from '../config/config';
import {
  extractToken,
  isOriginAllowed,
  parseSubprotocols,
  selectSubprotocol,
  splitUrl,
  type OriginPolicy,
} from './handshake';

describe('subprotocols and token', () => {
  it('takes the token from token.<t>, and answers faceid.v1 only when offered', () => {
    const offered = parseSubprotocols(' faceid.v1 ,token.abc-DEF_1~.x');
    expect(offered).toEqual(['faceid.v1', 'token.abc-DEF_1~.x']);
    expect(selectSubprotocol(offered)).toBe('faceid.v1');
    expect(extractToken(offered, 'token=ignored')).toBe('abc-DEF_1~.x');
    expect(selectSubprotocol(['token.x'])).toBeNull();
  });

  it('falls back to ?token= and treats empty values as absent', () => {
    expect(extractToken([], 'a=1&token=q%2Bz')).toBe('q+z');
    expect(extractToken(parseSubprotocols(undefined), '')).toBeNull();
    expect(extractToken(['faceid.v1', 'token.'], 'token=x')).toBeNull();
    expect(extractToken([], 'token=')).toBeNull();
  });

  it('splits a request target', () => {
    expect(splitUrl('/ws/identify?token=a')).toEqual({ path: '/ws/identify', query: 'token=a' });
    expect(splitUrl('/ws/identify')).toEqual({ path: '/ws/identify', query: '' });
  });
});

describe('isOriginAllowed', () => {
  const defaults = (port: number, httpPort = port): OriginPolicy => ({
    allowed: loadConfig({ PORT: String(port) }).WS_ALLOWED_ORIGINS,
    httpPort: () => httpPort,
  });

  it('with the defaults: same host, and localhost / 127.0.0.1 on the HTTP port', () => {
    const p = defaults(3000);
    expect(isOriginAllowed('http://localhost:3000', 'localhost:3000', p)).toBe(true);
    expect(isOriginAllowed('http://127.0.0.1:3000', 'whatever:3000', p)).toBe(true); // listed explicitly
    expect(isOriginAllowed('http://localhost:3000', '127.0.0.1:3000', p)).toBe(true);
    expect(isOriginAllowed('https://clinic.kz', 'clinic.kz', p)).toBe(true); // behind a TLS proxy: self
    expect(isOriginAllowed('https://CLINIC.kz', 'clinic.kz', p)).toBe(true);
    expect(isOriginAllowed('http://10.1.2.3:3000', '10.1.2.3:3000', p)).toBe(true);
    expect(isOriginAllowed('https://evil.example', 'clinic.kz', p)).toBe(false);
    expect(isOriginAllowed('http://localhost:3999', 'localhost:3000', p)).toBe(false);
    expect(isOriginAllowed('null', 'clinic.kz', p)).toBe(false);
    expect(isOriginAllowed('file://', 'clinic.kz', p)).toBe(false);
  });

  it('self under uWS: the page is on the HTTP port, the socket on its own', () => {
    const p = defaults(3000);
    expect(isOriginAllowed('http://10.1.2.3:3000', '10.1.2.3:3001', p)).toBe(true);
    expect(isOriginAllowed('http://10.1.2.3:3002', '10.1.2.3:3001', p)).toBe(false);
    expect(isOriginAllowed('http://10.9.9.9:3000', '10.1.2.3:3001', p)).toBe(false);
  });

  it('lets clients without an Origin through (not a browser), and * lets every page through', () => {
    expect(isOriginAllowed(undefined, 'x', defaults(3000))).toBe(true);
    expect(isOriginAllowed('https://evil.example', 'x', { allowed: ['*'], httpPort: () => 3000 })).toBe(true);
  });

  it('an explicit list without self allows exactly those origins', () => {
    const p: OriginPolicy = {
      allowed: loadConfig({ WS_ALLOWED_ORIGINS: 'https://mis.clinic.kz' }).WS_ALLOWED_ORIGINS,
      httpPort: () => 3000,
    };
    expect(isOriginAllowed('https://mis.clinic.kz', 'gw.clinic.kz', p)).toBe(true);
    expect(isOriginAllowed('https://mis.clinic.kz:443', 'gw.clinic.kz', p)).toBe(true); // default port dropped
    expect(isOriginAllowed('https://gw.clinic.kz', 'gw.clinic.kz', p)).toBe(false);
  });
});
