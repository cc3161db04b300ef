import { BlockList, isIP } from 'node:net';

/**
 * TRUSTED_PROXIES: the reverse proxies (a TLS terminator, a load balancer) whose `X-Forwarded-For` the service believes.
 * Behind them every request comes from the proxy's address, so per-address limits would lump all desks of all
 * clinics together; with the proxy trusted, the client address is the one the proxy saw.
 */

/** Names for address ranges, as Express's `trust proxy` knows them. */
export const PROXY_RANGE_NAMES: Readonly<Record<string, readonly string[]>> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/** `::ffff:10.0.0.1` (an IPv4 peer of a dual-stack socket) as `10.0.0.1`. */
function plain(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1] : address;
}

/** One entry: a range name, an address, or address/prefix. Returns it normalised, or null when invalid. */
function entry(raw: string): string | null {
  const e = raw.trim().toLowerCase();
  if (e in PROXY_RANGE_NAMES) return e;
  const [address, prefix, extra] = e.split('/');
  if (extra !== undefined) return null;
  const family = isIP(plain(address));
  if (family === 0) return null;
  if (prefix === undefined) return plain(address);
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) return null;
  return `${plain(address)}/${Number(prefix)}`;
}

/** A comma list of entries; the list, or what is wrong with it (the bad entry's position). */
export function parseTrustedProxies(text: string): string[] | string {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const out: string[] = [];
  for (const [i, item] of items.entries()) {
    const e = entry(item);
    if (e === null)
      return `entry ${i + 1} is not an address, a CIDR range or one of ${Object.keys(PROXY_RANGE_NAMES).join(', ')}`;
    if (!out.includes(e)) out.push(e);
  }
  return out;
}

/** Whether a peer address is one of the trusted proxies. An empty list trusts none. */
export function compileTrustedProxies(entries: readonly string[]): (address: string) => boolean {
  if (entries.length === 0) return () => false;
  const list = new BlockList();
  const add = (e: string) => {
    const [address, prefix] = e.split('/');
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  };
  for (const e of entries) for (const r of PROXY_RANGE_NAMES[e] ?? [e]) add(r);
  return (address: string) => {
    const a = plain(address.trim());
    const family = isIP(a);
    if (family === 0) return false;
    return list.check(a, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/**
 * The client's address of a request: the peer, or, while the peer is a trusted proxy, the address that proxy put
 * last in `X-Forwarded-For` (and so on leftwards). The same walk as Express's `req.ip` with a trust function, for
 * requests Express does not see (WebSocket upgrades).
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: (address: string) => boolean,
): string {
  const chain = [peer ?? 'unknown'];
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? '');
  chain.push(
    ...header
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .reverse(),
  );
  for (let i = 0; i < chain.length - 1; i++) if (!trusted(chain[i])) return chain[i].slice(0, 64);
  return chain[chain.length - 1].slice(0, 64);
}
