export { DemoModule } from './demo.module';
export { CLIENT_DIR, demoCsp } from './demo.controller';
