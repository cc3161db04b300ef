-- The languages of each clinic's SMS texts to patients: kk+ru (both, Kazakh first: what every clinic sent so far), kk
-- or ru.

-- AlterTable
ALTER TABLE "Clinic" ADD COLUMN "smsLanguages" TEXT NOT NULL DEFAULT 'kk+ru';
