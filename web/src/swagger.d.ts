declare module "swagger-ui-dist/swagger-ui-bundle.js" {
  const SwaggerUIBundle: (opts: Record<string, unknown>) => unknown;
  export default SwaggerUIBundle;
}
