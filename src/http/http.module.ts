import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, DiscoveryModule } from '@nestjs/core';
import { DocsController } from './docs.controller';
import type { ErrorClass } from './errors';
import { ErrorFilter } from './exception.filter';
import { API_ERROR_CLASSES, OpenApiService } from './openapi';
import { RouteInterceptor } from './route';

export interface HttpModuleOptions {
  /**
   * The error classes the API's routes throw (AppError subclasses with a `status` table): the OpenAPI document gives
   * each code a route declares the status its class does. The error filter needs no list: it asks the thrown error.
   */
  errors?: readonly ErrorClass[];
}

/** The error filter (global, HTTP only), `GET /openapi.json` and `GET /docs`. */
@Module({
  imports: [DiscoveryModule],
  controllers: [DocsController],
  providers: [{ provide: APP_FILTER, useClass: ErrorFilter }, OpenApiService, RouteInterceptor],
  exports: [OpenApiService],
})
export class HttpModule {
  static forRoot(options: HttpModuleOptions = {}): DynamicModule {
    return {
      module: HttpModule,
      providers: [{ provide: API_ERROR_CLASSES, useValue: options.errors ?? [] }],
    };
  }
}
