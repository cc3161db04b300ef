/**
 * Where the gateway may send webhooks: a policy over hosts and addresses, so an MIS key cannot make the gateway
 * connect to itself, to the cloud metadata service or to other machines of the hospital network (SSRF).
 *
 * Refused, in every spelling (decimal, octal or hex integers, short forms such as 127.1, bracketed or
 * IPv4-embedding IPv6, trailing dots, upper case): loopback, unspecified and "this network" (0.0.0.0/8), the private
 * ranges (RFC 1918, CGNAT 100.64.0.0/10, IPv6 unique-local fc00::/7), link-local (169.254.0.0/16 with the metadata
 * service, fe80::/10), multicast, broadcast, IPv4-mapped IPv6, NAT64 and the other special-purpose and reserved
 * ranges. Only global unicast addresses remain. The operator lifts the rules for named hosts, addresses or ranges
 * (WEBHOOK_ALLOWED_PRIVATE_HOSTS), e.g. an MIS on the hospital LAN; unspecified, multicast and broadcast addresses
 * stay refused whatever the list says.
 *
 * Registration checks what the URL alone shows (an address, `localhost`); delivery resolves the name once, checks
 * every address it got and connects to the checked one (see WebhookDispatcher), so a name that resolves elsewhere
 * later (DNS rebinding) cannot move the connection.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type DestinationRule =
  | 'loopback'
  | 'unspecified'
  | 'this_network'
  | 'private'
  | 'shared_address'
  | 'link_local'
  | 'unique_local'
  | 'site_local'
  | 'multicast'
  | 'broadcast'
  | 'ipv4_mapped'
  | 'ipv4_compatible'
  | 'nat64'
  | 'ipv4_tunnel'
  | 'documentation'
  | 'benchmarking'
  | 'reserved'
  | 'local_name';

/** What each rule covers, for error messages and docs. */
export const DESTINATION_RULES: Readonly<Record<DestinationRule, string>> = {
  loopback: 'a loopback address (127.0.0.0/8, ::1, localhost)',
  unspecified: 'the unspecified address (0.0.0.0, ::)',
  this_network: 'an address of "this network" (0.0.0.0/8)',
  private: 'a private address (RFC 1918: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)',
  shared_address: 'a carrier-grade NAT address (100.64.0.0/10)',
  link_local: 'a link-local address (169.254.0.0/16 with the cloud metadata service, fe80::/10)',
  unique_local: 'an IPv6 unique-local address (fc00::/7)',
  site_local: 'an IPv6 site-local address (fec0::/10)',
  multicast: 'a multicast address (224.0.0.0/4, ff00::/8)',
  broadcast: 'the broadcast address (255.255.255.255)',
  ipv4_mapped: 'an IPv4-mapped IPv6 address (::ffff:0:0/96)',
  ipv4_compatible: 'an IPv4-compatible IPv6 address (::/96)',
  nat64: 'a NAT64 address (64:ff9b::/96, 64:ff9b:1::/48)',
  ipv4_tunnel: 'an IPv6 address that tunnels to IPv4 (6to4 2002::/16, Teredo 2001::/32)',
  documentation: 'a documentation address (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20)',
  benchmarking: 'a benchmarking address (198.18.0.0/15, 2001:2::/48)',
  reserved: 'a reserved or special-purpose address (not global unicast)',
  local_name: 'a name of the local network (.local, .internal, .home.arpa, .localdomain)',
};

/** Never lifted by WEBHOOK_ALLOWED_PRIVATE_HOSTS: no receiver can be there. */
const NEVER_ALLOWED: ReadonlySet<DestinationRule> = new Set(['unspecified', 'this_network', 'multicast', 'broadcast']);

/** A host with its brackets, zone id, one trailing dot and case removed. */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  const zone = h.indexOf('%');
  if (zone >= 0 && h.includes(':')) h = h.slice(0, zone);
  if (h.endsWith('.') && h.length > 1) h = h.slice(0, -1);
  return h;
}

/**
 * An IPv4 address as the URL standard and inet_aton() read one: 1 to 4 parts, each decimal, octal (leading 0) or
 * hex (0x), the last filling the remaining bytes (so 127.1, 2130706433, 0x7f000001 and 0177.0.0.1 are 127.0.0.1).
 * Null when the host is not one.
 */
export function parseIPv4(host: string): Uint8Array | null {
  const parts = host.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  if (parts.length === 0 || parts.length > 4) return null;
  const numbers: number[] = [];
  for (const part of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(part)) n = part.length === 2 ? 0 : parseInt(part.slice(2), 16);
    else if (/^0[0-7]+$/.test(part)) n = parseInt(part.slice(1), 8);
    else if (/^(0|[1-9][0-9]*)$/.test(part)) n = Number(part);
    else return null;
    if (!Number.isSafeInteger(n)) return null;
    numbers.push(n);
  }
  const last = numbers.pop()!;
  if (numbers.some((n) => n > 255) || last >= 256 ** (4 - numbers.length)) return null;
  const bytes = new Uint8Array(4);
  numbers.forEach((n, i) => (bytes[i] = n));
  let rest = last;
  for (let i = 3; i >= numbers.length; i--) {
    bytes[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  return bytes;
}

/** An IPv6 address (without brackets or zone) as 16 bytes, an embedded dotted IPv4 tail included; else null. */
export function parseIPv6(host: string): Uint8Array | null {
  if (!isIPv6(host)) return null;
  let text = host;
  const groups: number[] = [];
  const dotted = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  let tail: number[] = [];
  if (dotted) {
    const v4 = dotted[1].split('.').map(Number);
    tail = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
    text = text.slice(0, -dotted[1].length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head, rest] = text.split('::');
  const parse = (s: string | undefined) =>
    s
      ? s
          .split(':')
          .filter((g) => g !== '')
          .map((g) => parseInt(g, 16))
      : [];
  const before = parse(head);
  const after = parse(rest);
  const missing = 8 - before.length - after.length - tail.length;
  if (rest === undefined && missing !== 0) return null;
  groups.push(...before, ...Array.from({ length: Math.max(0, missing) }, () => 0), ...after, ...tail);
  if (groups.length !== 8) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}

/** The address in a host, IPv4 (4 bytes) or IPv6 (16), in any spelling; null for a name. */
export function parseAddress(host: string): Uint8Array | null {
  const h = normalizeHost(host);
  return h.includes(':') ? parseIPv6(h) : parseIPv4(h);
}

/** Whether `bytes` lies in prefix/len (prefix bytes of the same family). */
function inPrefix(bytes: Uint8Array, prefix: readonly number[], len: number): boolean {
  for (let bit = 0; bit < len; bit++) {
    const i = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if ((bytes[i] & mask) !== ((prefix[i] ?? 0) & mask)) return false;
  }
  return true;
}

const V4_RULES: ReadonlyArray<[readonly number[], number, DestinationRule]> = [
  [[0, 0, 0, 0], 32, 'unspecified'],
  [[0], 8, 'this_network'],
  [[10], 8, 'private'],
  [[100, 64], 10, 'shared_address'],
  [[127], 8, 'loopback'],
  [[169, 254], 16, 'link_local'],
  [[172, 16], 12, 'private'],
  [[192, 0, 0], 24, 'reserved'], // IETF protocol assignments
  [[192, 0, 2], 24, 'documentation'],
  [[192, 88, 99], 24, 'reserved'], // the former 6to4 relay anycast
  [[192, 168], 16, 'private'],
  [[198, 18], 15, 'benchmarking'],
  [[198, 51, 100], 24, 'documentation'],
  [[203, 0, 113], 24, 'documentation'],
  [[255, 255, 255, 255], 32, 'broadcast'],
  [[224], 4, 'multicast'],
  [[240], 4, 'reserved'],
];

const V6_RULES: ReadonlyArray<[readonly number[], number, DestinationRule]> = [
  [[], 128, 'unspecified'],
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 128, 'loopback'],
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96, 'ipv4_mapped'],
  [[], 96, 'ipv4_compatible'],
  [[0, 0x64, 0xff, 0x9b], 96, 'nat64'],
  [[0, 0x64, 0xff, 0x9b, 0, 1], 48, 'nat64'],
  [[0x20, 0x01, 0, 0], 32, 'ipv4_tunnel'], // Teredo
  [[0x20, 0x01, 0, 2, 0, 0], 48, 'benchmarking'],
  [[0x20, 0x01, 0x0d, 0xb8], 32, 'documentation'],
  [[0x20, 0x01], 23, 'reserved'], // IETF protocol assignments
  [[0x20, 0x02], 16, 'ipv4_tunnel'], // 6to4
  [[0x3f, 0xff], 20, 'documentation'],
  [[0xfc], 7, 'unique_local'],
  [[0xfe, 0x80], 10, 'link_local'],
  [[0xfe, 0xc0], 10, 'site_local'],
  [[0xff], 8, 'multicast'],
];

/** The rule an address falls under, or null for a global unicast address. */
export function addressRule(bytes: Uint8Array): DestinationRule | null {
  const rules = bytes.length === 4 ? V4_RULES : V6_RULES;
  for (const [prefix, len, rule] of rules) if (inPrefix(bytes, prefix, len)) return rule;
  // Global unicast is 2000::/3; everything else of IPv6 is unassigned or special.
  if (bytes.length === 16 && !inPrefix(bytes, [0x20], 3)) return 'reserved';
  return null;
}

/** Names that always mean this machine or the local network, whatever DNS says (RFC 6761, 6762, 8375). */
function nameRule(name: string): DestinationRule | null {
  if (name === 'localhost' || name.endsWith('.localhost') || name === 'localhost.localdomain') return 'loopback';
  if (/(^|\.)(local|internal|localdomain|home\.arpa)$/.test(name)) return 'local_name';
  return null;
}

/** What a host (as in a URL) shows by itself: an address's rule, a local name's rule, or null (a public name). */
export function hostRule(host: string): DestinationRule | null {
  const bytes = parseAddress(host);
  if (bytes) return addressRule(bytes);
  return nameRule(normalizeHost(host));
}

/** One WEBHOOK_ALLOWED_PRIVATE_HOSTS entry: a name, `*.domain`, an address, or a CIDR range. */
type AllowEntry = { name: string } | { wildcard: string } | { prefix: Uint8Array; len: number };

function parseAllowEntry(raw: string): AllowEntry {
  const entry = raw.trim().toLowerCase();
  const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
  const bytes = parseStrictAddress(cidr ? cidr[1] : entry);
  if (bytes) {
    const len = cidr ? Number(cidr[2]) : bytes.length * 8;
    if (len > bytes.length * 8) throw new Error(`"${raw}": the prefix is longer than the address`);
    return { prefix: bytes, len };
  }
  if (cidr) throw new Error(`"${raw}" is not an address range`);
  if (entry.startsWith('*.')) return { wildcard: normalizeHost(entry.slice(1)) };
  return { name: normalizeHost(entry) };
}

/** An address in its usual spelling only (a.b.c.d or IPv6), for the operator's list. */
function parseStrictAddress(text: string): Uint8Array | null {
  const h = normalizeHost(text);
  if (isIPv4(h)) return parseIPv4(h);
  return parseIPv6(h);
}

/** Checks WEBHOOK_ALLOWED_PRIVATE_HOSTS entries; returns what is wrong with the first bad one, or null. */
export function allowListProblem(entries: readonly string[]): string | null {
  for (const e of entries) {
    try {
      parseAllowEntry(e);
    } catch (err) {
      return (err as Error).message;
    }
  }
  return null;
}

export interface DestinationRefusal {
  rule: DestinationRule;
  /** For the MIS and the operator: the rule and how to lift it; never the address or the URL. */
  message: string;
}

function refusal(rule: DestinationRule): DestinationRefusal {
  const lift = NEVER_ALLOWED.has(rule) ? '' : ' unless the operator lists the host in WEBHOOK_ALLOWED_PRIVATE_HOSTS';
  return {
    rule,
    message: `The webhook URL's host is ${DESTINATION_RULES[rule]}: the gateway does not post there${lift}.`,
  };
}

/** The policy: which hosts, addresses and ranges may be private (WEBHOOK_ALLOWED_PRIVATE_HOSTS). */
export class DestinationPolicy {
  private readonly entries: AllowEntry[];

  constructor(allowedPrivate: readonly string[] = []) {
    this.entries = allowedPrivate.map(parseAllowEntry);
  }

  /**
   * Whether the list names the URL's host: a name by name or pattern, an address (in any spelling) by itself or a
   * range holding it. By the host only: a listed address does not admit every name that resolves to it.
   */
  private allows(host: string): boolean {
    const address = parseAddress(host);
    const name = normalizeHost(host);
    return this.entries.some((e) => {
      if ('prefix' in e)
        return address !== null && address.length === e.prefix.length && inPrefix(address, [...e.prefix], e.len);
      if (address !== null) return false;
      if ('name' in e) return e.name === name;
      return name.endsWith(e.wildcard) && name.length > e.wildcard.length;
    });
  }

  /**
   * At registration and before resolving: what the host shows by itself. An address (in any spelling) or a local
   * name is refused unless allowed; a public name passes (its addresses are checked when it is resolved).
   */
  checkHost(host: string): DestinationRefusal | null {
    const address = parseAddress(host);
    const rule = address ? addressRule(address) : nameRule(normalizeHost(host));
    if (rule === null) return null;
    if (!NEVER_ALLOWED.has(rule) && this.allows(host)) return null;
    return refusal(rule);
  }

  /**
   * At delivery: every address the name resolved to must pass (one bad address refuses the lot: the connection
   * might otherwise go there). An address passes if it is global unicast, or the list names the host.
   */
  checkResolved(host: string, addresses: readonly string[]): DestinationRefusal | null {
    if (addresses.length === 0) return refusal('reserved');
    for (const a of addresses) {
      const bytes = parseStrictAddress(a);
      if (!bytes) return refusal('reserved');
      const rule = addressRule(bytes);
      if (rule === null) continue;
      if (!NEVER_ALLOWED.has(rule) && this.allows(host)) continue;
      return refusal(rule);
    }
    return null;
  }
}
