// The Wrenn web console: a client of the public API only, served by
// `wrenn server` (package web embeds the build of this directory).
import { render } from "preact";
import { lazy, Suspense } from "preact/compat";
import { useEffect, useState } from "preact/hooks";
import { loadSession, saveSession, setUnauthorizedHandler, type Session } from "./api";
import { Link, navigate, usePath } from "./ui";
import { AuthPage } from "./pages/Auth";
import { KeysPage } from "./pages/Keys";
import { SandboxesPage } from "./pages/Sandboxes";
import { CreateSandboxPage } from "./pages/CreateSandbox";
import { SandboxPage } from "./pages/Sandbox";
import { SnapshotsPage } from "./pages/Snapshots";
import "./style.css";

// swagger-ui is large: only /docs loads it.
const DocsPage = lazy(() => import("./pages/Docs").then((m) => ({ default: m.DocsPage })));

function App() {
  const path = usePath();
  const [session, setSession] = useState<Session | null>(loadSession());
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    setUnauthorizedHandler((message) => {
      saveSession(null);
      setSession(null);
      setNotice(message);
      navigate("/login", true);
    });
  }, []);

  const signedIn = (s: Session) => {
    saveSession(s);
    setSession(s);
    setNotice(null);
    navigate("/sandboxes", true);
  };
  const logout = () => {
    saveSession(null);
    setSession(null);
    navigate("/login", true);
  };

  if (path === "/docs") {
    return (
      <Shell session={session} path={path} onLogout={logout}>
        <Suspense fallback={<div class="loading">Loading the API reference…</div>}>
          <DocsPage />
        </Suspense>
      </Shell>
    );
  }
  if (!session || path === "/login" || path === "/signup") {
    if (session && (path === "/login" || path === "/signup")) {
      navigate("/sandboxes", true);
      return null;
    }
    return <AuthPage mode={path === "/signup" ? "signup" : "login"} notice={notice} onSession={signedIn} />;
  }

  let page;
  let m: RegExpMatchArray | null;
  if (path === "/" || path === "/sandboxes") page = <SandboxesPage />;
  else if (path === "/sandboxes/new") page = <CreateSandboxPage />;
  else if ((m = path.match(/^\/sandboxes\/([^/]+)$/))) page = <SandboxPage id={decodeURIComponent(m[1])} />;
  else if (path === "/keys") page = <KeysPage />;
  else if (path === "/snapshots") page = <SnapshotsPage />;
  else
    page = (
      <div class="empty" data-testid="not-found">
        <h1>Page not found</h1>
        <p>
          Nothing lives at <code>{path}</code>. <Link href="/sandboxes">Go to your sandboxes</Link>.
        </p>
      </div>
    );
  return (
    <Shell session={session} path={path} onLogout={logout}>
      {page}
    </Shell>
  );
}

function Shell(props: { session: Session | null; path: string; onLogout: () => void; children: preact.ComponentChildren }) {
  const item = (href: string, label: string, id: string) => (
    <Link href={href} id={id} class={props.path === href || props.path.startsWith(href + "/") ? "nav-item active" : "nav-item"}>
      {label}
    </Link>
  );
  return (
    <div class="shell">
      <header class="topbar">
        <Link href="/sandboxes" class="brand">
          <img src="/favicon.svg" alt="" width="22" height="22" />
          <span>Wrenn</span>
        </Link>
        <nav>
          {props.session && item("/sandboxes", "Sandboxes", "nav-sandboxes")}
          {props.session && item("/snapshots", "Templates", "nav-snapshots")}
          {props.session && item("/keys", "API keys", "nav-keys")}
          {item("/docs", "API reference", "nav-docs")}
        </nav>
        <div class="user">
          {props.session ? (
            <>
              <span id="user-email">{props.session.email}</span>
              <button class="btn btn-small" id="logout" onClick={props.onLogout}>
                Log out
              </button>
            </>
          ) : (
            <Link href="/login" class="btn btn-small" id="nav-login">
              Log in
            </Link>
          )}
        </div>
      </header>
      <main class="content">{props.children}</main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
