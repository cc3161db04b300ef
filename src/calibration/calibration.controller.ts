import { Controller, Get } from '@nestjs/common';
import { z } from 'zod';
import { MisCaller, MisKeyAuth, type MisPrincipal } from '../auth';
import { ApiRoute, defineRoute, Input, type RouteInput } from '../http';
import { METRIC_NAMES } from './bins';
import { CalibrationService, DEFAULT_CALIBRATION_DAYS, MAX_CALIBRATION_DAYS } from './calibration.service';

const Day = z.iso.date();
const Count = z.number().int();
const Score = z.number().nullable();

const Bin = z.object({
  bin: z.string().meta({ description: 'The bin: its lower edge for a numeric metric (e.g. "0.46"), else a category.' }),
  lo: z.number().optional().meta({ description: 'Numeric metrics: the bin is [lo, hi).' }),
  hi: z.number().nullable().optional().meta({ description: 'null: the last bin, open above.' }),
  count: Count,
});

const Summary = z.object({
  verdicts: z.object({ total: Count, face: Count, code: Count, none: Count }),
  genuine: z.object({ count: Count, median: Score, p10: Score, p2: Score, p1: Score }).meta({
    description:
      'Scores of the `match` verdicts, estimated from their 0.01 bins (within one bin). No ground truth: a match is taken as genuine.',
  }),
  noMatch: z.object({
    count: Count,
    nearMisses: Count.meta({
      description:
        '`no_match` verdicts scoring at least matchThreshold - nearMissMargin: likely genuine patients refused.',
    }),
  }),
  darkFailures: Count.meta({
    description: 'Face verdicts that timed out with most frames too dark or without a face.',
  }),
  quality: z.object({ faceSize: Score, brightness: Score, sharpness: Score }).meta({
    description:
      'Medians over face verdicts of their frames’ mean inter-ocular distance (px), brightness (0-255) and sharpness, from the bins (coarse).',
  }),
  metrics: z
    .record(z.string(), z.array(Bin))
    .meta({ description: `Bins in use per metric: ${METRIC_NAMES.join(', ')}.` }),
});

const calibrationSpec = defineRoute({
  summary: 'Field calibration histograms of the caller’s clinic',
  description:
    'Per workstation and for the whole clinic, the counts kept for calibration of the UTC days from..to (both ' +
    `included; default the last ${DEFAULT_CALIBRATION_DAYS} days, at most ${MAX_CALIBRATION_DAYS}; else 400 ` +
    '`calibration_range_invalid`): match scores of face verdicts by result in 0.01 bins, liveness challenges (pass, ' +
    'fail, not_reached) and passive liveness, the mean face size, brightness and sharpness of the frames each verdict ' +
    'used, analysed frames by state, and outcomes and failures by cause. Counts only: never a verdict, a session, a ' +
    'patient or an exact score. `faceid calibrate` reads the same counts and suggests a threshold.',
  tags: ['stats'],
  query: z.object({
    from: Day.optional().meta({
      description: `First UTC day (YYYY-MM-DD). Default: ${DEFAULT_CALIBRATION_DAYS - 1} days before \`to\`.`,
    }),
    to: Day.optional().meta({ description: 'Last UTC day (YYYY-MM-DD), included. Default: today.' }),
    workstation: z
      .uuid()
      .optional()
      .meta({ description: 'Only this workstation in `workstations` (`clinic` stays the whole clinic).' }),
  }),
  response: z.object({
    from: z.string(),
    to: z.string(),
    days: Count,
    matchThreshold: z
      .number()
      .meta({ description: 'The service’s MATCH_THRESHOLD now (near misses are counted from it).' }),
    nearMissMargin: z.number(),
    clinic: Summary,
    workstations: z.array(Summary.extend({ workstationId: z.string(), name: z.string().nullable() })),
  }),
  errors: ['calibration_range_invalid'],
});

/** `GET /calibration` for the clinic's MIS and its operators (MIS key, like `/stats`), scoped to the key's clinic. */
@Controller('calibration')
@MisKeyAuth()
export class CalibrationController {
  constructor(private readonly calibration: CalibrationService) {}

  @Get()
  @ApiRoute(calibrationSpec)
  get(@MisCaller() caller: MisPrincipal, @Input() input: RouteInput<typeof calibrationSpec>) {
    return this.calibration.forClinic(caller.clinicId, input.query);
  }
}
