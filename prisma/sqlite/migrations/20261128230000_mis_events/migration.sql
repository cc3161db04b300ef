-- MIS events (transactional outbox), the code path, MIS clients and webhooks.

-- AlterTable
ALTER TABLE "Clinic" ADD COLUMN "eventSeq" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "IdentificationSession" ADD COLUMN "refusedAt" DATETIME;
ALTER TABLE "IdentificationSession" ADD COLUMN "refusalReason" TEXT;

-- CreateTable
CREATE TABLE "Event" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "type" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "sessionId" TEXT,
    "method" TEXT NOT NULL,
    "result" TEXT NOT NULL,
    "reason" TEXT,
    "durationMs" INTEGER,
    "payload" JSONB NOT NULL,
    "createdAt" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "OneTimeCode" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "sessionId" TEXT NOT NULL,
    "patientId" TEXT NOT NULL,
    "workstationId" TEXT NOT NULL,
    "codeHash" TEXT NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "usedAt" DATETIME,
    "createdAt" DATETIME NOT NULL,
    CONSTRAINT "OneTimeCode_sessionId_clinicId_fkey" FOREIGN KEY ("sessionId", "clinicId") REFERENCES "IdentificationSession" ("id", "clinicId") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "MisClient" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "apiKeyHash" TEXT NOT NULL,
    "previousKeyHash" TEXT,
    "previousExpiresAt" DATETIME,
    "createdAt" DATETIME NOT NULL,
    "rotatedAt" DATETIME,
    "revokedAt" DATETIME
);

-- CreateTable
CREATE TABLE "WebhookSubscription" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "secretKeyId" TEXT NOT NULL,
    "secretIv" BLOB NOT NULL,
    "secretCiphertext" BLOB NOT NULL,
    "secretTag" BLOB NOT NULL,
    "state" TEXT NOT NULL,
    "cursorSeq" INTEGER NOT NULL,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "nextAttemptAt" DATETIME NOT NULL,
    "leaseOwner" TEXT,
    "leaseUntil" DATETIME,
    "createdAt" DATETIME NOT NULL,
    "deadAt" DATETIME
);

-- CreateTable
CREATE TABLE "WebhookDelivery" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "subscriptionId" TEXT NOT NULL,
    "eventId" TEXT NOT NULL,
    "eventSeq" INTEGER NOT NULL,
    "attempt" INTEGER NOT NULL,
    "outcome" TEXT NOT NULL,
    "status" INTEGER,
    "error" TEXT,
    "durationMs" INTEGER NOT NULL,
    "createdAt" DATETIME NOT NULL,
    CONSTRAINT "WebhookDelivery_subscriptionId_clinicId_fkey" FOREIGN KEY ("subscriptionId", "clinicId") REFERENCES "WebhookSubscription" ("id", "clinicId") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE UNIQUE INDEX "Event_clinicId_seq_key" ON "Event"("clinicId", "seq");

-- CreateIndex
CREATE INDEX "Event_clinicId_createdAt_idx" ON "Event"("clinicId", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "OneTimeCode_sessionId_key" ON "OneTimeCode"("sessionId");

-- CreateIndex
CREATE UNIQUE INDEX "OneTimeCode_sessionId_clinicId_key" ON "OneTimeCode"("sessionId", "clinicId");

-- CreateIndex
CREATE INDEX "OneTimeCode_patientId_clinicId_createdAt_idx" ON "OneTimeCode"("patientId", "clinicId", "createdAt");

-- CreateIndex
CREATE INDEX "OneTimeCode_workstationId_clinicId_createdAt_idx" ON "OneTimeCode"("workstationId", "clinicId", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "MisClient_apiKeyHash_key" ON "MisClient"("apiKeyHash");

-- CreateIndex
CREATE UNIQUE INDEX "MisClient_previousKeyHash_key" ON "MisClient"("previousKeyHash");

-- CreateIndex
CREATE UNIQUE INDEX "MisClient_id_clinicId_key" ON "MisClient"("id", "clinicId");

-- CreateIndex
CREATE INDEX "MisClient_clinicId_idx" ON "MisClient"("clinicId");

-- CreateIndex
CREATE UNIQUE INDEX "WebhookSubscription_id_clinicId_key" ON "WebhookSubscription"("id", "clinicId");

-- CreateIndex
CREATE INDEX "WebhookSubscription_clinicId_idx" ON "WebhookSubscription"("clinicId");

-- CreateIndex
CREATE INDEX "WebhookSubscription_state_nextAttemptAt_idx" ON "WebhookSubscription"("state", "nextAttemptAt");

-- CreateIndex
CREATE INDEX "WebhookDelivery_subscriptionId_createdAt_idx" ON "WebhookDelivery"("subscriptionId", "createdAt");
