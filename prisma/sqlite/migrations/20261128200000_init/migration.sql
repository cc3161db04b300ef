-- CreateTable
CREATE TABLE "Clinic" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "Workstation" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "apiKeyHash" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revokedAt" DATETIME,
    CONSTRAINT "Workstation_clinicId_fkey" FOREIGN KEY ("clinicId") REFERENCES "Clinic" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Patient" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "iin" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Patient_clinicId_fkey" FOREIGN KEY ("clinicId") REFERENCES "Clinic" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Template" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "patientId" TEXT NOT NULL,
    "keyId" TEXT NOT NULL,
    "iv" BLOB NOT NULL,
    "ciphertext" BLOB NOT NULL,
    "tag" BLOB NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revokedAt" DATETIME,
    CONSTRAINT "Template_patientId_clinicId_fkey" FOREIGN KEY ("patientId", "clinicId") REFERENCES "Patient" ("id", "clinicId") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "IdentificationSession" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "workstationId" TEXT NOT NULL,
    "patientId" TEXT NOT NULL,
    "appointmentId" TEXT NOT NULL,
    "channel" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "tokenHash" TEXT NOT NULL,
    "tokenExpiresAt" DATETIME NOT NULL,
    "tokenUsedAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" DATETIME,
    CONSTRAINT "IdentificationSession_workstationId_clinicId_fkey" FOREIGN KEY ("workstationId", "clinicId") REFERENCES "Workstation" ("id", "clinicId") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "IdentificationSession_patientId_clinicId_fkey" FOREIGN KEY ("patientId", "clinicId") REFERENCES "Patient" ("id", "clinicId") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Verdict" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "sessionId" TEXT NOT NULL,
    "result" TEXT NOT NULL,
    "method" TEXT NOT NULL,
    "score" REAL,
    "liveness" JSONB,
    "timings" JSONB,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Verdict_sessionId_clinicId_fkey" FOREIGN KEY ("sessionId", "clinicId") REFERENCES "IdentificationSession" ("id", "clinicId") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "AuditLog" (
    "seq" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "clinicId" TEXT,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "subject" TEXT,
    "detail" JSONB,
    "at" DATETIME NOT NULL,
    "prevHash" TEXT NOT NULL,
    "hash" TEXT NOT NULL
);

-- CreateIndex
CREATE UNIQUE INDEX "Workstation_apiKeyHash_key" ON "Workstation"("apiKeyHash");

-- CreateIndex
CREATE INDEX "Workstation_clinicId_idx" ON "Workstation"("clinicId");

-- CreateIndex
CREATE UNIQUE INDEX "Workstation_id_clinicId_key" ON "Workstation"("id", "clinicId");

-- CreateIndex
CREATE UNIQUE INDEX "Patient_clinicId_iin_key" ON "Patient"("clinicId", "iin");

-- CreateIndex
CREATE UNIQUE INDEX "Patient_id_clinicId_key" ON "Patient"("id", "clinicId");

-- CreateIndex
CREATE INDEX "Template_patientId_clinicId_idx" ON "Template"("patientId", "clinicId");

-- CreateIndex
CREATE UNIQUE INDEX "IdentificationSession_tokenHash_key" ON "IdentificationSession"("tokenHash");

-- CreateIndex
CREATE INDEX "IdentificationSession_workstationId_clinicId_idx" ON "IdentificationSession"("workstationId", "clinicId");

-- CreateIndex
CREATE INDEX "IdentificationSession_patientId_clinicId_finishedAt_idx" ON "IdentificationSession"("patientId", "clinicId", "finishedAt");

-- CreateIndex
CREATE UNIQUE INDEX "IdentificationSession_id_clinicId_key" ON "IdentificationSession"("id", "clinicId");

-- CreateIndex
CREATE UNIQUE INDEX "Verdict_sessionId_key" ON "Verdict"("sessionId");

-- CreateIndex
CREATE UNIQUE INDEX "Verdict_sessionId_clinicId_key" ON "Verdict"("sessionId", "clinicId");

-- CreateIndex
CREATE UNIQUE INDEX "AuditLog_prevHash_key" ON "AuditLog"("prevHash");

-- CreateIndex
CREATE UNIQUE INDEX "AuditLog_hash_key" ON "AuditLog"("hash");

-- CreateIndex
CREATE INDEX "AuditLog_clinicId_seq_idx" ON "AuditLog"("clinicId", "seq");

-- The audit log is append-only (not expressible in schema.prisma): the database refuses UPDATE and DELETE.
CREATE TRIGGER "AuditLog_no_update" BEFORE UPDATE ON "AuditLog"
BEGIN
    SELECT RAISE(ABORT, 'AuditLog is append-only');
END;

CREATE TRIGGER "AuditLog_no_delete" BEFORE DELETE ON "AuditLog"
BEGIN
    SELECT RAISE(ABORT, 'AuditLog is append-only');
END;
