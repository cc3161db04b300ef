export {
  checkIin,
  isValidIin,
  validateIin,
  iinCheckDigit,
  IinError,
  IinSchema,
  type IinCheck,
  type IinReason,
} from './iin';
