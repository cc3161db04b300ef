-- A code may be sent again (a lost SMS): how many times this one went out.

-- AlterTable
ALTER TABLE "OneTimeCode" ADD COLUMN "sends" INTEGER NOT NULL DEFAULT 1;
