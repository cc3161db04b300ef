-- Key lifecycle: a workstation's or MIS client's keys replaced by rotations keep working for their own grace each (a
-- later rotation never shortens an earlier key's grace), the last rotation of a workstation, and the workstation an
-- identification event is about (a workstation key reads only its own sessions' outcomes).

-- AlterTable
ALTER TABLE "Workstation" ADD COLUMN     "rotatedAt" TIMESTAMP(3);

-- AlterTable
ALTER TABLE "Event" ADD COLUMN     "workstationId" TEXT;

-- CreateTable
CREATE TABLE "PreviousKey" (
    "id" TEXT NOT NULL,
    "clinicId" TEXT NOT NULL,
    "holderKind" TEXT NOT NULL,
    "holderId" TEXT NOT NULL,
    "keyHash" TEXT NOT NULL,
    "retiredAt" TIMESTAMP(3) NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "PreviousKey_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "PreviousKey_keyHash_key" ON "PreviousKey"("keyHash");

-- CreateIndex
CREATE INDEX "PreviousKey_holderKind_holderId_expiresAt_idx" ON "PreviousKey"("holderKind", "holderId", "expiresAt");

-- CreateIndex
CREATE INDEX "Event_clinicId_workstationId_seq_idx" ON "Event"("clinicId", "workstationId", "seq");

-- An active MIS client's previous key (and its grace) moves to PreviousKey, with a new uuid v4 as its id.
INSERT INTO "PreviousKey" ("id", "clinicId", "holderKind", "holderId", "keyHash", "retiredAt", "expiresAt")
SELECT gen_random_uuid()::text, "clinicId", 'mis_client', "id", "previousKeyHash", COALESCE("rotatedAt", "createdAt"),
       "previousExpiresAt"
  FROM "MisClient"
 WHERE "previousKeyHash" IS NOT NULL AND "previousExpiresAt" IS NOT NULL AND "revokedAt" IS NULL;

-- DropIndex
DROP INDEX "MisClient_previousKeyHash_key";

-- AlterTable
ALTER TABLE "MisClient" DROP COLUMN "previousKeyHash",
DROP COLUMN "previousExpiresAt";

-- The workstation of each identification event written so far, from its session (lock-outs refused before any
-- session had none recorded: they stay for MIS keys only).
UPDATE "Event" e
   SET "workstationId" = s."workstationId"
  FROM "IdentificationSession" s
 WHERE s."id" = e."sessionId" AND s."clinicId" = e."clinicId" AND e."type" LIKE 'identification.%';
