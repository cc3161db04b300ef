import { Controller, Delete, Post, Req, Res, UseInterceptors } from '@nestjs/common';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { ApiRoute, defineRoute, Input, type RouteInput } from '../http';
import { IinSchema } from '../patients';
import type { Enroller } from './enroller';
import { EnrollerOf, EnrollmentAuth } from './enrollment-auth';
import { EnrollmentService, MAX_IMAGES, type EnrollResult } from './enrollment.service';
import { EnrollmentError } from './errors';
import {
  ImageBodyInterceptor,
  imageFilesInterceptor,
  IMAGE_FIELD,
  MAX_IMAGE_BYTES,
  uploadedImages,
  wipeUploads,
} from './upload';

const IinParams = z.object({ iin: IinSchema });

const Enrolled = z.object({
  patientIin: z.string(),
  templateId: z.string(),
  images: z.number().int().meta({ description: 'Photos that went into the template.' }),
  createdAt: z.iso.datetime(),
  replaced: z.boolean().meta({ description: 'True when it replaced an active template (`template.replaced`).' }),
});

const CodeSent = z
  .object({
    confirmation: z.literal('code_sent'),
    patientIin: z.string(),
    images: z.number().int(),
    codeExpiresAt: z.iso.datetime(),
    resendsLeft: z
      .number()
      .int()
      .meta({ description: 'How many more times the desk may send a photo (and get a new code) for this request.' }),
  })
  .meta({
    description:
      '202: a workstation replaces an existing template. Nothing is stored yet: a six-digit code went to the ' +
      'patient’s phone; POST /patients/{iin}/template/confirm with it stores the new template.',
  });

const enrolled = (r: EnrollResult) => ({
  patientIin: r.patientIin,
  templateId: r.templateId,
  images: r.images,
  createdAt: r.createdAt.toISOString(),
  replaced: r.replaced,
});

/**
 * Answers 202 instead of the route's 201 (Nest sets the route's status again when it replies, so the next status
 * call is redirected; any other status, e.g. an error's, still goes through).
 */
function acceptedInsteadOfCreated(res: Response): void {
  const status = res.status.bind(res);
  res.status = ((code: number) => status(code === 201 ? 202 : code)) as Response['status'];
  res.status(202);
}

const jpegSchema = { type: 'string', format: 'binary', contentMediaType: 'image/jpeg' };

const enrollSpec = defineRoute({
  summary: 'Enroll the patient’s reference face',
  description:
    `One JPEG as the body (\`Content-Type: image/jpeg\`), or 1-${MAX_IMAGES} JPEGs as \`multipart/form-data\` ` +
    `fields named \`${IMAGE_FIELD}\`, up to ${MAX_IMAGE_BYTES / 1024 / 1024} MB each. Each photo must show exactly ` +
    'one face; the template is the normalised mean of their embeddings, stored encrypted (AES-256-GCM). ' +
    'With an enrollment key (`fid_enr_...`) it is stored at once (201) and replaces any earlier template of the ' +
    'patient. With a workstation key, only where the clinic allows desk enrollment (else 403 ' +
    '`desk_enrollment_disabled`): a patient who never had a template is enrolled at once (201); for one who has ' +
    '(or had) a template the answer is 202 `code_sent`: a six-digit code went to the patient by SMS, and the new ' +
    'template is stored only when the desk sends it to POST /patients/{iin}/template/confirm. Every stored template ' +
    'is an MIS event (`template.enrolled`, `template.replaced`). The photos are never stored: they are wiped from ' +
    'memory once analysed.',
  tags: ['enrollment'],
  params: IinParams,
  rawBody: {
    required: true,
    content: {
      'image/jpeg': { schema: jpegSchema },
      'multipart/form-data': {
        schema: {
          type: 'object',
          properties: { [IMAGE_FIELD]: { type: 'array', items: jpegSchema, minItems: 1, maxItems: MAX_IMAGES } },
          required: [IMAGE_FIELD],
        },
      },
    },
  },
  response: z.union([Enrolled, CodeSent]),
  status: 201,
  errors: [
    'iin_invalid',
    'desk_enrollment_disabled',
    'code_attempts_exceeded',
    'code_resend_limit',
    'sms_unavailable',
    'enroll_no_face',
    'enroll_multiple_faces',
    'frame_format_unsupported',
    'frame_corrupt',
    'frame_truncated',
    'frame_too_large',
    'payload_too_large',
    'unsupported_media_type',
    'busy',
  ],
});

const confirmSpec = defineRoute({
  summary: 'Confirm a workstation’s new reference photo with the patient’s code',
  description:
    'After POST /patients/{iin}/template answered 202 `code_sent`: the code the patient received. Right, the new ' +
    'template replaces the old one (201, MIS event `template.replaced` with `confirmation: "patient_code"`); wrong, ' +
    '422 `code_invalid` with `attemptsLeft`; after CODE_ATTEMPTS_MAX wrong codes, or once the code expired ' +
    '(CODE_TTL_S), the new photo is discarded and the patient keeps the template they had. Only the workstation ' +
    'that sent the photo can confirm it.',
  tags: ['enrollment'],
  params: IinParams,
  body: z.object({
    code: z
      .string()
      .regex(/^\d{6}$/)
      .meta({ description: 'The six digits the patient received.' }),
  }),
  response: Enrolled,
  status: 201,
  errors: [
    'iin_invalid',
    'desk_enrollment_disabled',
    'confirmation_not_found',
    'code_invalid',
    'code_expired',
    'code_locked_out',
    'code_attempts_exceeded',
  ],
});

const revokeSpec = defineRoute({
  summary: 'Revoke the patient’s template',
  description:
    'Face identification of the patient then answers `no_template` until they are enrolled again. An MIS event ' +
    '(`template.revoked`). With an enrollment key; a workstation key only where the clinic allows desk enrollment ' +
    '(and its next enrollment of the patient then needs the patient’s code).',
  tags: ['enrollment'],
  params: IinParams,
  response: null,
  errors: ['iin_invalid', 'template_not_found', 'desk_enrollment_disabled'],
});

/** Enrollment of reference templates, scoped to the caller's clinic (an enrollment key or a workstation). */
@Controller('patients')
@EnrollmentAuth()
export class EnrollmentController {
  constructor(private readonly enrollment: EnrollmentService) {}

  @Post(':iin/template')
  // After @ApiRoute's validation (decorators apply bottom-up): a bad IIN is refused before the body is read.
  @UseInterceptors(ImageBodyInterceptor, imageFilesInterceptor(MAX_IMAGES))
  @ApiRoute(enrollSpec)
  async enroll(
    @EnrollerOf() who: Enroller,
    @Input('params') params: RouteInput<typeof enrollSpec>['params'],
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ) {
    try {
      const images = uploadedImages(req);
      if (images.length === 0) {
        throw new EnrollmentError(
          'invalid_request',
          `No image: send a JPEG body or multipart fields named "${IMAGE_FIELD}".`,
        );
      }
      const r = await this.enrollment.enroll(who, params.iin, images);
      if (r.status === 'enrolled') return enrolled(r);
      acceptedInsteadOfCreated(res);
      return {
        confirmation: 'code_sent' as const,
        patientIin: r.patientIin,
        images: r.images,
        codeExpiresAt: r.codeExpiresAt.toISOString(),
        resendsLeft: r.resendsLeft,
      };
    } finally {
      wipeUploads(req);
    }
  }

  @Post(':iin/template/confirm')
  @ApiRoute(confirmSpec)
  async confirm(@EnrollerOf() who: Enroller, @Input() input: RouteInput<typeof confirmSpec>) {
    return enrolled(await this.enrollment.confirm(who, input.params.iin, input.body.code));
  }

  @Delete(':iin/template')
  @ApiRoute(revokeSpec)
  async revoke(
    @EnrollerOf() who: Enroller,
    @Input('params') params: RouteInput<typeof revokeSpec>['params'],
  ): Promise<void> {
    await this.enrollment.revoke(who, params.iin);
  }
}
