import { Controller, Get, Inject, Post, Req, UseGuards } from '@nestjs/common';
import type { Request } from 'express';
import { z } from 'zod';
import { CONFIG, type Config } from '../config';
import { ApiKeyGuard, CurrentPrincipal, WORKSTATION_SECURITY, type Principal } from '../auth';
import { ApiRoute, ApiSecurity, AppError, defineRoute, Input, type RouteInput } from '../http';
import { SESSIONS, VERDICTS, type SessionRepository, type VerdictRepository } from '../storage/ports';
import { SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, WS_PATH } from '../transport/protocol';
import { TransportService } from '../transport/transport.module';
import { SessionsService } from './sessions.service';

const Iin = z.string().regex(/^\d{12}$/, 'an IIN is 12 digits').meta({ description: 'The patient’s IIN (12 digits).' });

const createSpec = defineRoute({
  summary: 'Start an identification session',
  description:
    'For a patient at the desk (`in_person`). Remote appointments are refused with `face_id_not_applicable`: they ' +
    'use the code path. Answers a single-use token for the WebSocket, valid for SESSION_TOKEN_TTL_S seconds.',
  tags: ['sessions'],
  body: z.object({
    iin: Iin,
    appointmentId: z.string().min(1).max(64).regex(/^[\w.:-]+$/),
    channel: z.enum(['in_person', 'remote']),
  }),
  response: z.object({
    sessionId: z.string(),
    wsUrl: z.string().meta({ description: 'Where the browser opens the WebSocket.' }),
    token: z.string().meta({ description: 'Single use; send it as the subprotocol `token.<token>`.' }),
    protocols: z.array(z.string()).meta({ description: 'Pass as the WebSocket constructor’s second argument.' }),
    expiresAt: z.string(),
  }),
  status: 201,
  errors: ['iin_invalid', 'face_id_not_applicable', 'attempts_exceeded'],
});

const getSpec = defineRoute({
  summary: 'A session and its verdict',
  tags: ['sessions'],
  params: z.object({ id: z.string().uuid() }),
  response: z.object({
    sessionId: z.string(),
    state: z.enum(['created', 'connected', 'finished', 'expired']),
    channel: z.enum(['in_person', 'remote']),
    appointmentId: z.string(),
    createdAt: z.string(),
    verdict: z
      .object({
        result: z.string(),
        method: z.string(),
        score: z.number().nullable(),
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
    @Inject(SESSIONS) private readonly sessions: SessionRepository,
    @Inject(VERDICTS) private readonly verdicts: VerdictRepository,
  ) {}

  @Post()
  @ApiRoute(createSpec)
  async create(
    @CurrentPrincipal() principal: Principal,
    @Input() input: RouteInput<typeof createSpec>,
    @Req() req: Request,
  ) {
    const s = await this.service.create(principal, input.body);
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
    const s = await this.sessions.get(principal.clinicId, input.params.id);
    if (!s) throw new AppError('session_not_found', 'No such session in this clinic.');
    const v = await this.verdicts.forSession(principal.clinicId, s.id);
    return {
      sessionId: s.id,
      state: s.state,
      channel: s.channel,
      appointmentId: s.appointmentId,
      createdAt: s.createdAt.toISOString(),
      verdict: v && {
        result: v.result,
        method: v.method,
        score: v.score,
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
