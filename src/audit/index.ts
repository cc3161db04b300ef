export { AuditService, AuditDetailError, checkAuditDetail, type AuditRecord } from './audit.service';
export { AuditModule } from './audit.module';
