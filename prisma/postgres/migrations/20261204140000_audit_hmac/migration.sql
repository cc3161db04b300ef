-- The audit chain is keyed: each new entry's hash is an HMAC-SHA256 under a key derived from the key ring, whose id
-- is stored beside it. Entries written before keep a null keyId and their plain SHA-256 hash (verified as legacy).

-- AlterTable
ALTER TABLE "AuditLog" ADD COLUMN     "keyId" TEXT;
