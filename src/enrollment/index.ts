export {
  EnrollmentService,
  MAX_IMAGES,
  type ConfirmationSent,
  type EnrollOutcome,
  type EnrollResult,
} from './enrollment.service';
export { asEnroller, auditActorOf, templateActorOf, type Enroller } from './enroller';
export { ENROLLMENT_SECURITY, EnrollerOf, EnrollmentAuth, EnrollmentAuthGuard } from './enrollment-auth';
export { PendingEnrollmentSweep } from './pending-sweep';
export { ENROLLMENT_ERROR_STATUS, EnrollmentError, TemplateCryptoError } from './errors';
export {
  TemplateCipher,
  loadOrCreateKeyFile,
  EMBEDDING_LENGTH,
  KEY_FILE_NAME,
  type TemplateOwner,
} from './template-crypto';
export { EnrollmentModule } from './enrollment.module';
