import { Module } from '@nestjs/common';
import { AuditService } from './audit.service';

/** The audit trail: a module that records imports it (`constructor(private readonly audit: AuditService)`). */
@Module({
  providers: [AuditService],
  exports: [AuditService],
})
export class AuditModule {}
