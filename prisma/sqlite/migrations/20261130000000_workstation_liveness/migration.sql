-- Liveness challenges per clinic and per workstation (null = inherit), and the camera each workstation last reported.

-- AlterTable
ALTER TABLE "Clinic" ADD COLUMN "livenessChallenges" TEXT;

-- AlterTable
ALTER TABLE "Workstation" ADD COLUMN "livenessChallenges" TEXT;
ALTER TABLE "Workstation" ADD COLUMN "cameraLabel" TEXT;
ALTER TABLE "Workstation" ADD COLUMN "cameraHash" TEXT;
