export { EnrollmentService, MAX_IMAGES, type EnrollResult } from './enrollment.service';
export { EnrollmentError, TemplateCryptoError } from './errors';
export {
  TemplateCipher,
  loadOrCreateKeyFile,
  EMBEDDING_LENGTH,
  KEY_FILE_NAME,
  type TemplateOwner,
  type BytesContext,
} from './template-crypto';
export { EnrollmentModule, templateCipherFromConfig } from './enrollment.module';
