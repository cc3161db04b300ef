import { promises as dns } from 'node:dns';
import { Injectable } from '@nestjs/common';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/**
 * Resolves webhook host names, once per delivery attempt: the dispatcher checks every address against the
 * destination policy and connects to the checked one, never resolving the name again for the connection.
 * Its own provider, so that name resolution alone can be replaced (tests resolve names of their own making).
 */
@Injectable()
export class HostResolver {
  /** Every address of `host` (A and AAAA), in the system resolver's order. Throws with the resolver's error code. */
  async lookup(host: string): Promise<ResolvedAddress[]> {
    const found = await dns.lookup(host, { all: true, verbatim: true });
    return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
  }
}
