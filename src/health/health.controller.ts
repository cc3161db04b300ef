import { Controller, Get, Header, ServiceUnavailableException } from '@nestjs/common';
import { EngineService } from '../engine';

export interface HealthBody {
  status: 'ok';
  engine: { workers: number; queued: number; inFlight: number; completed: number; failed: number; rejected: number };
  opencv: string;
  uptimeSeconds: number;
}

@Controller('health')
export class HealthController {
  constructor(private readonly engine: EngineService) {}

  /** 200 when the engine can take work; 503 `{status:'error', code}` otherwise (for load balancers and the MIS). */
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
}
