-- Enrollment roles: desk enrollment per clinic (off by default), enrollment keys, and workstation replacements of a
-- template waiting for the patient's code.

-- AlterTable
ALTER TABLE "Clinic" ADD COLUMN "deskEnrollment" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "EnrollmentKey" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "apiKeyHash" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL,
    "revokedAt" DATETIME,
    CONSTRAINT "EnrollmentKey_clinicId_fkey" FOREIGN KEY ("clinicId") REFERENCES "Clinic" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "PendingEnrollment" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clinicId" TEXT NOT NULL,
    "patientId" TEXT NOT NULL,
    "workstationId" TEXT NOT NULL,
    "codeHash" TEXT NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "sends" INTEGER NOT NULL DEFAULT 1,
    "images" INTEGER NOT NULL,
    "state" TEXT NOT NULL,
    "templateKeyId" TEXT,
    "templateIv" BLOB,
    "templateCiphertext" BLOB,
    "templateTag" BLOB,
    "createdAt" DATETIME NOT NULL,
    "closedAt" DATETIME,
    CONSTRAINT "PendingEnrollment_patientId_clinicId_fkey" FOREIGN KEY ("patientId", "clinicId") REFERENCES "Patient" ("id", "clinicId") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateIndex
CREATE UNIQUE INDEX "EnrollmentKey_apiKeyHash_key" ON "EnrollmentKey"("apiKeyHash");

-- CreateIndex
CREATE UNIQUE INDEX "EnrollmentKey_id_clinicId_key" ON "EnrollmentKey"("id", "clinicId");

-- CreateIndex
CREATE INDEX "EnrollmentKey_clinicId_idx" ON "EnrollmentKey"("clinicId");

-- CreateIndex
CREATE INDEX "PendingEnrollment_patientId_clinicId_createdAt_idx" ON "PendingEnrollment"("patientId", "clinicId", "createdAt");

-- CreateIndex
CREATE INDEX "PendingEnrollment_workstationId_clinicId_createdAt_idx" ON "PendingEnrollment"("workstationId", "clinicId", "createdAt");

-- CreateIndex
CREATE INDEX "PendingEnrollment_state_expiresAt_idx" ON "PendingEnrollment"("state", "expiresAt");
