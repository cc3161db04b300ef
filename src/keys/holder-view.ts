import { z } from 'zod';
import type { KeyHolder } from '../storage/ports';

/** A workstation or MIS client as the operator sees it (never a key or a hash). */
export const HolderSchema = z.object({
  id: z.string(),
  clinicId: z.string(),
  name: z.string(),
  state: z.enum(['active', 'revoked']),
  createdAt: z.string(),
  rotatedAt: z.string().nullable().meta({ description: 'The last key rotation; null if never.' }),
  revokedAt: z.string().nullable(),
  previousKeys: z.array(z.object({ id: z.string(), retiredAt: z.string(), validUntil: z.string() })).meta({
    description: 'Keys replaced by rotations that still work until validUntil (their grace), first to end first.',
  }),
});

export function holderView(h: KeyHolder): z.infer<typeof HolderSchema> {
  return {
    id: h.id,
    clinicId: h.clinicId,
    name: h.name,
    state: h.revokedAt ? 'revoked' : 'active',
    createdAt: h.createdAt.toISOString(),
    rotatedAt: h.rotatedAt?.toISOString() ?? null,
    revokedAt: h.revokedAt?.toISOString() ?? null,
    previousKeys: h.previousKeys.map((k) => ({
      id: k.id,
      retiredAt: k.retiredAt.toISOString(),
      validUntil: k.validUntil.toISOString(),
    })),
  };
}
