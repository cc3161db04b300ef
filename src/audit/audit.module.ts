import { Global, Module } from '@nestjs/common';
import { AuditService } from './audit.service';

/** Global, so any module can record: `constructor(private readonly audit: AuditService)`. */
@Global()
@Module({
  providers: [AuditService],
  exports: [AuditService],
})
export class AuditModule {}
