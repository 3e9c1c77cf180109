import { useState } from "preact/hooks";
import { api, type ApiError, type Session } from "../api";
import { asApiError, ErrorLine, Link } from "../ui";

/** AuthPage logs in or signs up; the API's refusal is shown as it words it. */
export function AuthPage(props: { mode: "login" | "signup"; notice: string | null; onSession: (s: Session) => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const signup = props.mode === "signup";

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      props.onSession(await (signup ? api.signup(email, password) : api.login(email, password)));
    } catch (err) {
      setError(asApiError(err));
      setBusy(false);
    }
  };

  return (
    <div class="auth">
      <div class="auth-card">
        <div class="auth-brand">
          <img src="/favicon.svg" alt="" width="36" height="36" />
          <div>
            <div class="auth-title">Wrenn</div>
            <div class="muted">MicroVM sandboxes for untrusted code</div>
          </div>
        </div>
        <h1>{signup ? "Create your account" : "Log in"}</h1>
        {props.notice && !error && <div class="notice">{props.notice}</div>}
        <form onSubmit={submit} id="auth-form" data-mode={props.mode}>
          <label>
            Email
            <input
              id="auth-email"
              type="email"
              autocomplete="username"
              required
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
            />
          </label>
          <label>
            Password
            <input
              id="auth-password"
              type="password"
              autocomplete={signup ? "new-password" : "current-password"}
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
            {signup && <span class="hint">At least 8 characters.</span>}
          </label>
          <ErrorLine error={error} id="auth-error" />
          <button class="btn btn-primary btn-block" id="auth-submit" disabled={busy}>
            {busy ? "Please wait…" : signup ? "Sign up" : "Log in"}
          </button>
        </form>
        <div class="auth-switch">
          {signup ? (
            <>
              Have an account? <Link href="/login" id="to-login">Log in</Link>
            </>
          ) : (
            <>
              New to Wrenn? <Link href="/signup" id="to-signup">Create an account</Link>
            </>
          )}
          <span class="sep">·</span>
          <Link href="/docs">API reference</Link>
        </div>
      </div>
    </div>
  );
}
