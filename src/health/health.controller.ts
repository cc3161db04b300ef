import { Controller, Get, Header, Inject, Optional, ServiceUnavailableException } from '@nestjs/common';
import { EngineService } from '../engine';
import { DrainService } from '../fleet/drain.service';
import { STORAGE } from '../storage/storage.module';
import type { Storage } from '../storage/open';
import type { SignalsState } from '../storage/signals';

export interface HealthBody {
  status: 'ok';
  engine: { workers: number; queued: number; inFlight: number; completed: number; failed: number; rejected: number };
  opencv: string;
  uptimeSeconds: number;
}

/** Why a gateway is not ready, most urgent first. */
export type NotReadyCode = 'draining' | 'database_unreachable' | string;

export interface ReadyBody {
  status: 'ok' | 'error';
  /** Only when not ready: draining, database_unreachable, or the engine's error code. */
  code?: NotReadyCode;
  draining: boolean;
  database: 'ok' | 'unreachable';
  engine: 'ok' | string;
  /** in_process (SQLite), listening / connecting (the PostgreSQL notification connection), stopped. */
  signals: SignalsState;
}

/** How long the readiness check waits for the database's answer. */
const DATABASE_CHECK_MS = 2000;

@Controller('health')
export class HealthController {
  constructor(
    private readonly engine: EngineService,
    @Optional() @Inject(STORAGE) private readonly storage?: Pick<Storage, 'ping' | 'signals'>,
    @Optional() @Inject(DrainService) private readonly drain?: Pick<DrainService, 'draining'>,
  ) {}

  /**
   * Liveness: 200 when the engine can take work; 503 `{status:'error', code}` otherwise (for the MIS and monitoring).
   * A draining gateway and an unreachable database do not change it: the process is alive (see /health/ready).
   */
  @Get()
  @Header('Cache-Control', 'no-store')
  health(): HealthBody {
    const s = this.engine.status();
    if (!s.ready) throw new ServiceUnavailableException({ status: 'error', code: s.code });
    const { workers, queued, inFlight, completed, failed, rejected } = s.stats;
    return {
      status: 'ok',
      engine: { workers, queued, inFlight, completed, failed, rejected },
      opencv: s.opencv,
      uptimeSeconds: Math.floor(process.uptime()),
    };
  }

  /**
   * Readiness, for a load balancer's health check (deploy/haproxy.cfg): 200 when this gateway should get new work;
   * 503 with the reason while it drains before a stop, when the database does not answer within 2 s, or when the
   * engine cannot take work. The body says which, without any detail of the database.
   */
  @Get('ready')
  @Header('Cache-Control', 'no-store')
  async ready(): Promise<ReadyBody> {
    const engine = this.engine.status();
    const draining = this.drain?.draining ?? false;
    const reachable = this.storage ? await this.storage.ping(DATABASE_CHECK_MS) : true;
    const body: ReadyBody = {
      status: 'ok',
      draining,
      database: reachable ? 'ok' : 'unreachable',
      engine: engine.ready ? 'ok' : engine.code,
      signals: this.storage?.signals.state ?? 'in_process',
    };
    const code = draining ? 'draining' : !reachable ? 'database_unreachable' : !engine.ready ? engine.code : undefined;
    if (code !== undefined) throw new ServiceUnavailableException({ ...body, status: 'error', code });
    return body;
  }
}
