import { Controller, Delete, Post, Req, UseInterceptors } from '@nestjs/common';
import type { Request } from 'express';
import { z } from 'zod';
import { Principal, WorkstationAuth } from '../auth';
import { ApiRoute, defineRoute, Input, type RouteInput } from '../http';
import { IinSchema } from '../patients';
import { EnrollmentService, MAX_IMAGES } from './enrollment.service';
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

const jpegSchema = { type: 'string', format: 'binary', contentMediaType: 'image/jpeg' };

const enrollSpec = defineRoute({
  summary: 'Enroll the patient’s reference face',
  description:
    `One JPEG as the body (\`Content-Type: image/jpeg\`), or 1-${MAX_IMAGES} JPEGs as \`multipart/form-data\` ` +
    `fields named \`${IMAGE_FIELD}\`, up to ${MAX_IMAGE_BYTES / 1024 / 1024} MB each. Each photo must show exactly ` +
    'one face; the template is the normalised mean of their embeddings, stored encrypted (AES-256-GCM). It ' +
    'replaces any earlier template of the patient. The photos are never stored: they are wiped from memory once ' +
    'analysed.',
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
  response: z.object({
    patientIin: z.string(),
    templateId: z.string(),
    images: z.number().int().meta({ description: 'Photos that went into the template.' }),
    createdAt: z.iso.datetime(),
  }),
  status: 201,
  errors: [
    'iin_invalid',
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

const revokeSpec = defineRoute({
  summary: 'Revoke the patient’s template',
  description: 'Face identification of the patient then answers `no_template` until they are enrolled again.',
  tags: ['enrollment'],
  params: IinParams,
  response: null,
  errors: ['iin_invalid', 'template_not_found'],
});

/** Enrollment of reference templates, scoped to the calling workstation's clinic. */
@Controller('patients')
@WorkstationAuth()
export class EnrollmentController {
  constructor(private readonly enrollment: EnrollmentService) {}

  @Post(':iin/template')
  // After @ApiRoute's validation (decorators apply bottom-up): a bad IIN is refused before the body is read.
  @UseInterceptors(ImageBodyInterceptor, imageFilesInterceptor(MAX_IMAGES))
  @ApiRoute(enrollSpec)
  async enroll(
    @Principal() who: Principal,
    @Input('params') params: RouteInput<typeof enrollSpec>['params'],
    @Req() req: Request,
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
      return {
        patientIin: r.patientIin,
        templateId: r.templateId,
        images: r.images,
        createdAt: r.createdAt.toISOString(),
      };
    } finally {
      wipeUploads(req);
    }
  }

  @Delete(':iin/template')
  @ApiRoute(revokeSpec)
  async revoke(
    @Principal() who: Principal,
    @Input('params') params: RouteInput<typeof revokeSpec>['params'],
  ): Promise<void> {
    await this.enrollment.revoke(who, params.iin);
  }
}
