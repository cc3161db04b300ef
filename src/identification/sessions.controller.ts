import { Controller, Get, Inject, Post, Req, UseGuards } from '@nestjs/common';
import type { Request } from 'express';
import { z } from 'zod';
import { CONFIG, type Config } from '../config';
import { ApiKeyGuard, CurrentPrincipal, WORKSTATION_SECURITY, type Principal } from '../auth';
import { ApiRoute, ApiSecurity, defineRoute, Input, type RouteInput } from '../http';
import { SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, WS_PATH } from '../transport/protocol';
import { TransportService } from '../transport/transport.module';
import { CodeSentSchema } from './code-path.controller';
import { IN_PERSON_CODE_REASONS } from './code-path.service';
import { SessionsService, type SessionRequest } from './sessions.service';

const Iin = z
  .string()
  .regex(/^\d{12}$/, 'an IIN is 12 digits')
  .meta({ description: 'The patient’s IIN (12 digits).' });

const CreateSessionBody = z
  .object({
    iin: Iin,
    appointmentId: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[\w.:-]+$/),
    channel: z.enum(['in_person', 'remote']),
    method: z
      .enum(['face', 'code'])
      .optional()
      .meta({
        description:
          'How the patient is identified. In person: `face` (the default) or `code` (with a `reason`). Remote: always ' +
          '`code` (the default; `face` is refused).',
      }),
    reason: z
      .enum(IN_PERSON_CODE_REASONS)
      .optional()
      .meta({
        description:
          'Required with method `code` in person, and only then: why not by face. `patient_refused_photo`, ' +
          '`face_failed` (face identification did not succeed: failed attempts, no template) or `camera_unavailable`. ' +
          'Recorded as the refusal of POST /sessions/{id}/refusal is (the `identification.refused` event).',
      }),
  })
  .superRefine((body, ctx) => {
    const method = body.method ?? (body.channel === 'remote' ? 'code' : 'face');
    if (body.channel === 'remote' && method === 'face') {
      ctx.addIssue({
        code: 'custom',
        path: ['method'],
        message: 'a remote appointment is never photographed: use method code',
      });
    }
    const inPersonCode = body.channel === 'in_person' && method === 'code';
    if (inPersonCode && body.reason === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['reason'],
        message: `method code in person needs a reason: ${IN_PERSON_CODE_REASONS.join(', ')}`,
      });
    }
    if (!inPersonCode && body.reason !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['reason'], message: 'a reason goes only with method code in person' });
    }
  })
  .transform((body): SessionRequest => {
    const head = { iin: body.iin, appointmentId: body.appointmentId };
    if (body.channel === 'remote') return { ...head, channel: 'remote', method: 'code' };
    // The checks above ensure a reason with method code.
    if (body.method === 'code') return { ...head, channel: 'in_person', method: 'code', reason: body.reason! };
    return { ...head, channel: 'in_person', method: 'face' };
  });

const createSpec = defineRoute({
  summary: 'Start an identification session',
  description:
    'For a patient at the desk (`in_person`), by face (the default): answers a single-use token for the WebSocket, ' +
    'valid for SESSION_TOKEN_TTL_S seconds. Before any token is issued, a patient without an enrolled template is ' +
    'answered 409 `no_template`, and one with FACE_ATTEMPTS_MAX failed face sessions within ' +
    'FACE_ATTEMPTS_WINDOW_MIN 429 `attempts_exceeded`; both error bodies carry `codeAvailable: true`: the desk can ' +
    'ask at once for the code instead. By code (`method: "code"`, with a `reason`), or for a remote appointment ' +
    '(`remote`, never photographed): the session starts on the code path at once, a six-digit code goes to the ' +
    'patient by SMS, and the answer is `{sessionId, state: "code_pending", codeExpiresAt}` (enter the code with ' +
    'POST /sessions/{id}/code). In person the reason is recorded as a refusal (an `identification.refused` MIS ' +
    "event), and the face attempts limit does not apply: only the code path's own limits (429 " +
    '`code_attempts_exceeded`). By face, when every face session this gateway serves at once is in use ' +
    '(FACE_SESSIONS_MAX): 503 `capacity_exceeded` with Retry-After (seconds) and `retryAfterMs`, before anything is ' +
    'stored; ask again after that long (the desk shows that the patient waits). Sessions by code are never refused ' +
    'for it.',
  tags: ['sessions'],
  body: CreateSessionBody,
  response: z.union([
    z
      .object({
        sessionId: z.string(),
        wsUrl: z.string().meta({ description: 'Where the browser opens the WebSocket.' }),
        token: z.string().meta({ description: 'Single use; send it as the subprotocol `token.<token>`.' }),
        protocols: z.array(z.string()).meta({ description: 'Pass as the WebSocket constructor’s second argument.' }),
        expiresAt: z.string(),
      })
      .meta({ description: 'In person by face: the face session.' }),
    CodeSentSchema.meta({ description: 'Remote, or in person by code: the code path, the code is sent.' }),
  ]),
  status: 201,
  errors: [
    'iin_invalid',
    'no_template',
    'attempts_exceeded',
    'code_attempts_exceeded',
    'sms_unavailable',
    'capacity_exceeded',
    'draining',
  ],
});

const getSpec = defineRoute({
  summary: 'A session and its verdict',
  tags: ['sessions'],
  params: z.object({ id: z.string().uuid() }),
  response: z.object({
    sessionId: z.string(),
    state: z.enum(['created', 'connected', 'code_pending', 'finished', 'expired']),
    channel: z.enum(['in_person', 'remote']),
    appointmentId: z.string(),
    createdAt: z.string(),
    refusalReason: z
      .string()
      .nullable()
      .meta({
        description:
          'Why the patient at the desk is identified by code rather than by face (a refusal, or a session started ' +
          'with method `code`), e.g. `patient_refused_photo`, `face_failed`, `camera_unavailable`; null otherwise.',
      }),
    codeExpiresAt: z.string().nullable().meta({ description: 'When the six-digit code expires (code path only).' }),
    verdict: z
      .object({
        result: z.string(),
        method: z.string(),
        liveness: z.record(z.string(), z.unknown()).nullable(),
        timings: z.record(z.string(), z.unknown()).nullable(),
        createdAt: z.string(),
      })
      .nullable(),
  }),
  errors: ['session_not_found'],
});

/** Thin HTTP edge of the sessions: validation and shaping here, policy in SessionsService. */
@Controller('sessions')
@UseGuards(ApiKeyGuard)
@ApiSecurity(WORKSTATION_SECURITY)
export class SessionsController {
  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly service: SessionsService,
    private readonly transport: TransportService,
  ) {}

  @Post()
  @ApiRoute(createSpec)
  async create(
    @CurrentPrincipal() principal: Principal,
    @Input() input: RouteInput<typeof createSpec>,
    @Req() req: Request,
  ) {
    const s = await this.service.create(principal, input.body);
    if (s.kind === 'code')
      return { sessionId: s.sessionId, state: s.state, codeExpiresAt: s.codeExpiresAt.toISOString() };
    return {
      sessionId: s.sessionId,
      wsUrl: this.wsUrl(req),
      token: s.token,
      protocols: [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + s.token],
      expiresAt: s.expiresAt.toISOString(),
    };
  }

  @Get(':id')
  @ApiRoute(getSpec)
  async get(@CurrentPrincipal() principal: Principal, @Input() input: RouteInput<typeof getSpec>) {
    const { session: s, verdict: v, codeExpiresAt } = await this.service.view(principal.clinicId, input.params.id);
    return {
      sessionId: s.id,
      state: s.state,
      channel: s.channel,
      appointmentId: s.appointmentId,
      createdAt: s.createdAt.toISOString(),
      refusalReason: s.refusalReason,
      codeExpiresAt: codeExpiresAt?.toISOString() ?? null,
      verdict: v && {
        result: v.result,
        method: v.method,
        liveness: v.liveness,
        timings: v.timings,
        createdAt: v.createdAt.toISOString(),
      },
    };
  }

  /** The WebSocket address as the client reached us (uWS listens on its own port). */
  private wsUrl(req: Request): string {
    const secure = req.protocol === 'https';
    const host = req.headers.host ?? `${this.config.HOST}:${this.config.PORT}`;
    const scheme = secure ? 'wss' : 'ws';
    const info = this.transport.info();
    if (info?.kind === 'uws') {
      const hostname = host.replace(/:\d+$/, '');
      return `${scheme}://${hostname}:${info.port ?? this.config.WS_PORT_UWS}${WS_PATH}`;
    }
    return `${scheme}://${host}${WS_PATH}`;
  }
}
