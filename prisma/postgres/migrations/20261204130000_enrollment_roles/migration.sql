-- Enrollment roles: desk enrollment per clinic (off by default), enrollment keys, and workstation replacements of a
-- template waiting for the patient's code.

-- AlterTable
ALTER TABLE "Clinic" ADD COLUMN     "deskEnrollment" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "EnrollmentKey" (
    "id" TEXT NOT NULL,
    "clinicId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "apiKeyHash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL,
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "EnrollmentKey_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "PendingEnrollment" (
    "id" TEXT NOT NULL,
    "clinicId" TEXT NOT NULL,
    "patientId" TEXT NOT NULL,
    "workstationId" TEXT NOT NULL,
    "codeHash" TEXT NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "sends" INTEGER NOT NULL DEFAULT 1,
    "images" INTEGER NOT NULL,
    "state" TEXT NOT NULL,
    "templateKeyId" TEXT,
    "templateIv" BYTEA,
    "templateCiphertext" BYTEA,
    "templateTag" BYTEA,
    "createdAt" TIMESTAMP(3) NOT NULL,
    "closedAt" TIMESTAMP(3),

    CONSTRAINT "PendingEnrollment_pkey" PRIMARY KEY ("id")
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

-- AddForeignKey
ALTER TABLE "EnrollmentKey" ADD CONSTRAINT "EnrollmentKey_clinicId_fkey" FOREIGN KEY ("clinicId") REFERENCES "Clinic"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "PendingEnrollment" ADD CONSTRAINT "PendingEnrollment_patientId_clinicId_fkey" FOREIGN KEY ("patientId", "clinicId") REFERENCES "Patient"("id", "clinicId") ON DELETE RESTRICT ON UPDATE CASCADE;
