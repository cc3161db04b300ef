import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLIENT_DIR, demoCsp } from './demo.controller';

describe('demo page', () => {
  it('serves from client/ at the repository root', () => {
    expect(fs.existsSync(path.join(CLIENT_DIR, 'faceid-client.js'))).toBe(true);
    expect(fs.existsSync(path.join(CLIENT_DIR, 'demo', 'index.html'))).toBe(true);
  });

  it('has a same-origin CSP without inline script, eval or framing', () => {
    const csp = demoCsp(null, '127.0.0.1');
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self';");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe|\*|ws:/);
  });

  it('allows the uWS port (its own port) for WebSockets, for a well-formed host name only', () => {
    expect(demoCsp(3001, 'desk.clinic.kz')).toContain(
      "connect-src 'self' ws://desk.clinic.kz:3001 wss://desk.clinic.kz:3001;",
    );
    expect(demoCsp(3001, '[::1]')).toContain('ws://[::1]:3001');
    for (const evil of ["x; script-src 'unsafe-inline'", 'a b', '', undefined]) {
      expect(demoCsp(3001, evil)).toContain("connect-src 'self';");
    }
  });
});
