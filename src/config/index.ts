export { loadConfig, describeConfig, configTableMarkdown, ConfigError, LOG_LEVELS } from './config';
export {
  parseTemplateKeys,
  isLoopbackHost,
  profileIssues,
  PROFILES,
  type Profile,
  type TemplateKeyConfig,
} from './config';
export type { Config, ConfigIssue, ConfigRow, LogLevel } from './config';
export { ConfigModule, CONFIG } from './config.module';
export { clientAddress, compileTrustedProxies, parseTrustedProxies } from './proxies';
