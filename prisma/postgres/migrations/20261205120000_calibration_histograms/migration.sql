-- Field calibration: per clinic, workstation, UTC day, metric and bin, how many verdicts (or analysed frames) fell
-- into the bin (src/calibration/bins.ts). Counts only: no row per verdict, no session, patient, score or embedding.

-- CreateTable
CREATE TABLE "CalibrationBin" (
    "clinicId" TEXT NOT NULL,
    "workstationId" TEXT NOT NULL,
    "day" TEXT NOT NULL,
    "metric" TEXT NOT NULL,
    "bin" TEXT NOT NULL,
    "count" INTEGER NOT NULL,

    CONSTRAINT "CalibrationBin_pkey" PRIMARY KEY ("clinicId","workstationId","day","metric","bin")
);

-- CreateIndex
CREATE INDEX "CalibrationBin_clinicId_day_idx" ON "CalibrationBin"("clinicId", "day");

-- AddForeignKey
ALTER TABLE "CalibrationBin" ADD CONSTRAINT "CalibrationBin_workstationId_clinicId_fkey" FOREIGN KEY ("workstationId", "clinicId") REFERENCES "Workstation"("id", "clinicId") ON DELETE RESTRICT ON UPDATE CASCADE;
