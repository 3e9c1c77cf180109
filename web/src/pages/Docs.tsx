import { useEffect, useRef, useState } from "preact/hooks";
// The browser bundle of swagger-ui, built into this chunk (no CDN).
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-bundle.js";
import "swagger-ui-dist/swagger-ui.css";
import { loadSession } from "../api";

/** DocsPage renders the server's own /openapi.yaml. "Try it out" sends the logged-in user's token. */
export function DocsPage() {
  const el = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    try {
      const ui = SwaggerUIBundle({
        domNode: el.current,
        url: "/openapi.yaml",
        deepLinking: false,
        docExpansion: "list",
        defaultModelsExpandDepth: 0,
        tryItOutEnabled: false,
        // Signed in: "Try it out" goes as this user.
        onComplete: () => {
          const s = loadSession();
          if (s) (ui as { preauthorizeApiKey: (k: string, v: string) => void }).preauthorizeApiKey("bearerAuth", s.token);
        },
        // Talk to this server, whatever the spec's servers say.
        requestInterceptor: (req: { url: string; headers: Record<string, string> }) => {
          const u = new URL(req.url, location.origin);
          if (u.origin !== location.origin) req.url = location.origin + u.pathname + u.search;
          const s = loadSession();
          if (s && !req.headers.Authorization && !req.headers["X-API-Key"]) req.headers.Authorization = `Bearer ${s.token}`;
          return req;
        },
      });
    } catch (e) {
      setError((e as Error).message);
    }
  }, []);
  return (
    <div class="docs" id="docs">
      {error && <div class="error-line">{error}</div>}
      <div ref={el} />
    </div>
  );
}
