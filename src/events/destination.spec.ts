import {
  allowListProblem,
  DestinationPolicy,
  hostRule,
  parseAddress,
  parseIPv4,
  type DestinationRule,
} from './destination';
import { checkWebhookUrl } from './webhooks.service';

const closed = new DestinationPolicy();

/** Hosts as they may reach the policy (raw, not normalised by a URL parser), with the rule each must hit. */
const REFUSED: Array<[string, DestinationRule]> = [
  // Loopback, every spelling of 127.0.0.1 and friends.
  ['127.0.0.1', 'loopback'],
  ['127.1', 'loopback'],
  ['127.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['2130706433', 'loopback'],
  ['0x7f000001', 'loopback'],
  ['0X7F000001', 'loopback'],
  ['017700000001', 'loopback'],
  ['0177.0.0.1', 'loopback'],
  ['0x7f.0.0.1', 'loopback'],
  ['0x7f.1', 'loopback'],
  ['127.0.0.1.', 'loopback'],
  ['::1', 'loopback'],
  ['[::1]', 'loopback'],
  ['[0:0:0:0:0:0:0:1]', 'loopback'],
  ['0000:0000:0000:0000:0000:0000:0000:0001', 'loopback'],
  ['localhost', 'loopback'],
  ['LOCALHOST', 'loopback'],
  ['localhost.', 'loopback'],
  ['api.localhost', 'loopback'],
  ['localhost.localdomain', 'loopback'],
  // Unspecified and "this network".
  ['0.0.0.0', 'unspecified'],
  ['0', 'unspecified'],
  ['0x0', 'unspecified'],
  ['::', 'unspecified'],
  ['[::]', 'unspecified'],
  ['0.1.2.3', 'this_network'],
  // Private ranges.
  ['10.0.0.1', 'private'],
  ['10.1', 'private'],
  ['167772161', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.168.1.1', 'private'],
  ['0xc0.0xa8.1.1', 'private'],
  ['0300.0250.01.01', 'private'],
  ['100.64.0.1', 'shared_address'],
  ['100.100.100.200', 'shared_address'], // a cloud metadata service inside CGNAT space
  ['100.127.255.255', 'shared_address'],
  ['fc00::1', 'unique_local'],
  ['[fd00:ec2::254]', 'unique_local'], // the IPv6 metadata service
  ['FD12:3456::1', 'unique_local'],
  ['fec0::1', 'site_local'],
  // Link-local, the metadata service included.
  ['169.254.169.254', 'link_local'],
  ['2852039166', 'link_local'],
  ['0xa9fea9fe', 'link_local'],
  ['0251.0376.0251.0376', 'link_local'],
  ['169.254.43518', 'link_local'],
  ['fe80::1', 'link_local'],
  ['[fe80::1%25eth0]', 'link_local'],
  ['fe80::1%eth0', 'link_local'],
  ['FEBF::1', 'link_local'],
  // IPv6 forms that carry an IPv4 address.
  ['::ffff:127.0.0.1', 'ipv4_mapped'],
  ['[::ffff:7f00:1]', 'ipv4_mapped'],
  ['::ffff:169.254.169.254', 'ipv4_mapped'],
  ['::ffff:8.8.8.8', 'ipv4_mapped'],
  ['::127.0.0.1', 'ipv4_compatible'],
  ['64:ff9b::7f00:1', 'nat64'],
  ['64:ff9b::8.8.8.8', 'nat64'],
  ['64:ff9b:1::1', 'nat64'],
  ['2002:7f00:1::1', 'ipv4_tunnel'],
  ['2001:0:4136:e378::1', 'ipv4_tunnel'],
  // Multicast, broadcast, reserved, documentation, benchmarking.
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['ff02::1', 'multicast'],
  ['255.255.255.255', 'broadcast'],
  ['4294967295', 'broadcast'],
  ['240.0.0.1', 'reserved'],
  ['192.0.0.8', 'reserved'],
  ['192.88.99.1', 'reserved'],
  ['100::1', 'reserved'],
  ['2001:1::1', 'reserved'],
  ['192.0.2.10', 'documentation'],
  ['198.51.100.7', 'documentation'],
  ['203.0.113.9', 'documentation'],
  ['2001:db8::1', 'documentation'],
  ['198.18.0.1', 'benchmarking'],
  ['198.19.255.255', 'benchmarking'],
  // Names that mean the local network whatever DNS says.
  ['printer.local', 'local_name'],
  ['mis.internal', 'local_name'],
  ['nas.home.arpa', 'local_name'],
];

const PUBLIC = [
  '8.8.8.8',
  '1.1.1.1',
  '93.184.216.34',
  '134217728', // 8.0.0.0
  '1.1', // 1.0.0.1
  '100.63.255.255',
  '100.128.0.1',
  '172.15.255.255',
  '172.32.0.1',
  '169.253.255.255',
  '192.169.0.1',
  '223.255.255.255',
  '2606:4700:4700::1111',
  '[2a00:1450:4001:80b::200e]',
  'mis.clinic.kz',
  'MIS.Clinic.KZ.',
  '127.0.0.1.nip.io', // a name: checked when it is resolved
  'localhost.example.com',
  'local.example.kz',
  'cafe.babe',
];

describe('destination policy: hosts in every spelling', () => {
  it.each(REFUSED)('refuses %s (%s)', (host, rule) => {
    expect(hostRule(host)).toBe(rule);
    expect(closed.checkHost(host)).toEqual({
      rule,
      message: expect.stringContaining('the gateway does not post there'),
    });
  });

  it.each(PUBLIC)('lets %s through', (host) => {
    expect(hostRule(host)).toBeNull();
    expect(closed.checkHost(host)).toBeNull();
  });

  it('reads IPv4 the way URL parsers and inet_aton() do', () => {
    const v4 = (h: string) => [...(parseIPv4(h) ?? [])].join('.');
    expect(v4('127.1')).toBe('127.0.0.1');
    expect(v4('0x7f.1')).toBe('127.0.0.1');
    expect(v4('1.2.65535')).toBe('1.2.255.255');
    expect(v4('0x')).toBe('0.0.0.0');
    expect(parseIPv4('256.0.0.1')).toBeNull();
    expect(parseIPv4('1.2.3.4.5')).toBeNull();
    expect(parseIPv4('4294967296')).toBeNull();
    expect(parseIPv4('08.0.0.1')).toBeNull(); // not octal, not decimal: not an address (a URL parser refuses it)
    expect(parseIPv4('1.2.3.x')).toBeNull();
    expect([...parseAddress('::ffff:1.2.3.4')!].slice(10)).toEqual([0xff, 0xff, 1, 2, 3, 4]);
    expect([...parseAddress('1:2:3:4:5:6:7.8.9.10')!].slice(12)).toEqual([7, 8, 9, 10]);
    expect(parseAddress('1::2::3')).toBeNull();
    expect(parseAddress('mis.clinic.kz')).toBeNull();
  });

  it('says the rule and how to lift it, never the host', () => {
    const r = closed.checkHost('169.254.169.254')!;
    expect(r.message).toContain('link-local');
    expect(r.message).toContain('WEBHOOK_ALLOWED_PRIVATE_HOSTS');
    expect(r.message).not.toContain('169.254.169.254');
    // What no list can lift says so.
    expect(closed.checkHost('255.255.255.255')!.message).not.toContain('WEBHOOK_ALLOWED_PRIVATE_HOSTS');
  });
});

describe('destination policy: what the operator allows', () => {
  const policy = new DestinationPolicy([
    '127.0.0.1',
    'mis.hospital.lan',
    '*.emr.internal',
    '10.20.0.0/16',
    'fd00:1::/32',
    '0.0.0.0',
  ]);

  it('lifts the rules for listed names, addresses (in any spelling) and ranges only', () => {
    for (const host of [
      '127.0.0.1',
      '127.1',
      '2130706433',
      '127.0.0.1.',
      '10.20.3.4',
      'fd00:1::5',
      'x.emr.internal',
      'MIS.hospital.lan',
    ]) {
      expect(policy.checkHost(host)).toBeNull();
    }
    for (const [host, rule] of [
      ['127.0.0.2', 'loopback'],
      ['::1', 'loopback'],
      ['[::ffff:127.0.0.1]', 'ipv4_mapped'],
      ['localhost', 'loopback'],
      ['10.21.0.1', 'private'],
      ['emr.internal', 'local_name'],
      ['169.254.169.254', 'link_local'],
    ] as const) {
      expect(policy.checkHost(host)?.rule).toBe(rule);
    }
  });

  it('never lifts unspecified, multicast or broadcast addresses', () => {
    expect(policy.checkHost('0.0.0.0')?.rule).toBe('unspecified');
    expect(new DestinationPolicy(['224.0.0.0/4']).checkHost('224.0.0.1')?.rule).toBe('multicast');
    expect(new DestinationPolicy(['255.255.255.255']).checkHost('255.255.255.255')?.rule).toBe('broadcast');
  });

  it('checks every resolved address: one refused address refuses the name', () => {
    expect(closed.checkResolved('mis.clinic.kz', ['93.184.216.34', '2606:2800:220:1::1'])).toBeNull();
    expect(closed.checkResolved('mis.clinic.kz', ['93.184.216.34', '127.0.0.1'])?.rule).toBe('loopback');
    expect(closed.checkResolved('rebind.example', ['::ffff:10.0.0.1'])?.rule).toBe('ipv4_mapped');
    expect(closed.checkResolved('rebind.example', ['169.254.169.254'])?.rule).toBe('link_local');
    expect(closed.checkResolved('rebind.example', [])?.rule).toBe('reserved');
    expect(closed.checkResolved('rebind.example', ['not an address'])?.rule).toBe('reserved');
    // A listed name may resolve to a private address; a listed address or range admits URLs that name it, not every
    // name that resolves into it (a rebinding name pointing at the listed 127.0.0.1 stays refused).
    expect(policy.checkResolved('mis.hospital.lan', ['192.168.5.5'])).toBeNull();
    expect(policy.checkResolved('x.emr.internal', ['10.1.1.1', '127.0.0.1'])).toBeNull();
    expect(policy.checkResolved('his.example.kz', ['10.20.9.9'])?.rule).toBe('private');
    expect(policy.checkResolved('rebind.example.kz', ['127.0.0.1'])?.rule).toBe('loopback');
    expect(policy.checkResolved('mis.hospital.lan', ['0.0.0.0'])?.rule).toBe('unspecified');
  });

  it('refuses a bad list', () => {
    expect(allowListProblem(['10.0.0.0/8', 'mis.lan', '*.emr.kz', '::1', 'fd00::/8'])).toBeNull();
    expect(allowListProblem(['10.0.0.0/33'])).toMatch(/prefix/);
    expect(() => new DestinationPolicy(['10.0.0.0/40'])).toThrow();
  });
});

describe('checkWebhookUrl with the destination policy', () => {
  const open = { allowHttp: true, allowedHosts: [] };

  // As an MIS would type them: the URL parser normalises some spellings first, the policy catches every one.
  it.each([
    ['http://127.0.0.1:9443/h', 'loopback'],
    ['https://127.1/h', 'loopback'],
    ['https://2130706433/h', 'loopback'],
    ['https://0x7f000001/h', 'loopback'],
    ['https://0177.0.0.1/h', 'loopback'],
    ['https://127.0.0.1./h', 'loopback'],
    ['https://[::1]:9443/h', 'loopback'],
    ['https://[0:0:0:0:0:0:0:1]/h', 'loopback'],
    ['https://LOCALHOST/h', 'loopback'],
    ['https://localhost./h', 'loopback'],
    ['https://169.254.169.254/latest/meta-data/', 'link_local'],
    ['https://[::ffff:169.254.169.254]/h', 'ipv4_mapped'],
    ['https://[::ffff:7f00:1]/h', 'ipv4_mapped'],
    ['https://[64:ff9b::7f00:1]/h', 'nat64'],
    ['https://10.0.0.5/h', 'private'],
    ['https://[fd00::1]/h', 'unique_local'],
    ['https://[fe80::1]/h', 'link_local'],
    ['https://0.0.0.0/h', 'unspecified'],
    ['https://0/h', 'unspecified'],
    ['https://224.0.0.1/h', 'multicast'],
  ])('%s is refused (%s)', (url, rule) => {
    let err: unknown;
    try {
      checkWebhookUrl(url, open);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'webhook_destination_refused', details: { rule } });
  });

  it('accepts public hosts', () => {
    expect(checkWebhookUrl('https://mis.clinic.kz/h', open)).toBe('https://mis.clinic.kz/h');
    expect(checkWebhookUrl('https://93.184.216.34/h', open)).toBe('https://93.184.216.34/h');
  });
});
