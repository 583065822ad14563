/** The little of oidc-provider (which ships no types) the test harness uses. */
declare module 'oidc-provider' {
  type Middleware = (ctx: never, next: () => Promise<void>) => Promise<void>;
  export default class Provider {
    constructor(issuer: string, configuration: unknown);
    use(middleware: Middleware): void;
    on(event: string, listener: (ctx: never, ...rest: unknown[]) => void): void;
    callback(): (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;
  }
}
