import { useState } from "preact/hooks";
import { api, formatAge, type Sandbox } from "../api";
import { FileBrowser } from "../components/Files";
import { MetricsView } from "../components/Metrics";
import { SandboxActions } from "../components/SandboxActions";
import { TerminalView } from "../components/Terminal";
import { ErrorLine, Link, navigate, StatusBadge, usePoll } from "../ui";

type Tab = "terminal" | "files" | "metrics";

/** SandboxPage is one sandbox: its details and lifecycle, a terminal, its files and metrics. */
export function SandboxPage(props: { id: string }) {
  const sb = usePoll(() => api.getSandbox(props.id), 2000, [props.id]);
  const [busy, setBusy] = useState<string | null>(null);
  const initial = (location.hash.slice(1) as Tab) || "terminal";
  const [tab, setTabState] = useState<Tab>(["terminal", "files", "metrics"].includes(initial) ? initial : "terminal");
  const setTab = (t: Tab) => {
    setTabState(t);
    history.replaceState(null, "", `#${t}`);
  };
  const forceExec = new URLSearchParams(location.search).get("terminal") === "exec";

  if (!sb.data) {
    return (
      <div>
        <Link href="/sandboxes" class="back">
          ← Sandboxes
        </Link>
        {sb.error ? <ErrorLine error={sb.error} id="sandbox-error" /> : <div class="loading">Loading…</div>}
      </div>
    );
  }
  const s: Sandbox = sb.data;
  const running = s.status === "running" && !busy;
  const tabButton = (t: Tab, label: string) => (
    <button class={`tab${tab === t ? " active" : ""}`} id={`tab-${t}`} onClick={() => setTab(t)}>
      {label}
    </button>
  );
  return (
    <div class="sandbox-page" data-testid="sandbox-page" data-id={s.id}>
      <Link href="/sandboxes" class="back">
        ← Sandboxes
      </Link>
      <div class="page-header">
        <div>
          <h1 class="mono" id="sandbox-id">
            {s.id}
          </h1>
          <div class="sub">
            <StatusBadge status={s.status} busy={busy ?? undefined} /> <span class="muted">from</span> <strong>{s.template}</strong>
          </div>
        </div>
        <div class="page-actions">
          <SandboxActions
            sandbox={s}
            onBusy={setBusy}
            onChanged={(n) => (n ? sb.setData(n) : sb.reload())}
            afterDestroy={() => navigate("/sandboxes")}
          />
        </div>
      </div>
      {sb.error && <ErrorLine error={sb.error} />}
      <div class="card details">
        <Detail label="Size" value={`${s.vcpus} vCPU · ${s.memory_mb} MiB`} />
        <Detail label="Inactivity" value={s.timeout_sec ? `${s.timeout_sec}s, then ${s.auto_pause ? "pause" : "destroy"}` : "never times out"} />
        <Detail label="Guest IP" value={s.guest_ip || "—"} mono />
        <Detail label="Created" value={formatAge(s.created_at)} title={s.created_at} />
        <Detail label="Last active" value={formatAge(s.last_active_at)} title={s.last_active_at ?? ""} />
        <Detail label="Internet" value={s.allow_internet_access === false ? "off" : "on"} />
        {Object.keys(s.metadata ?? {}).length > 0 && (
          <Detail
            label="Metadata"
            value={Object.entries(s.metadata!)
              .map(([k, v]) => `${k}=${v}`)
              .join("  ")}
            mono
          />
        )}
      </div>
      {s.status === "missing" ? (
        <div class="card empty-row" id="sandbox-missing">
          This sandbox is missing: its host stopped answering. It runs again if the host comes back in time, and becomes error if
          not. Destroying it now is recorded at once; the host ends it if it returns.
        </div>
      ) : s.status === "stopped" || s.status === "error" ? (
        <div class="card empty-row" id="sandbox-gone">
          This sandbox is {s.status}: it has no terminal, files or metrics any more.
        </div>
      ) : (
        <div class="card tabs-card">
          <div class="tabs">
            {tabButton("terminal", "Terminal")}
            {tabButton("files", "Files")}
            {tabButton("metrics", "Metrics")}
          </div>
          {/* Kept mounted while hidden: the terminal session stays attached. */}
          <div class="tab-body" hidden={tab !== "terminal"}>
            <TerminalView sandboxId={s.id} running={running} forceExec={forceExec} />
          </div>
          <div class="tab-body" hidden={tab !== "files"}>
            {tab === "files" && <FileBrowser sandboxId={s.id} running={running} />}
          </div>
          <div class="tab-body" hidden={tab !== "metrics"}>
            <MetricsView sandboxId={s.id} active={s.status === "running" || s.status === "paused"} visible={tab === "metrics"} />
          </div>
        </div>
      )}
    </div>
  );
}

function Detail(props: { label: string; value: string; mono?: boolean; title?: string }) {
  return (
    <div class="detail">
      <div class="detail-label">{props.label}</div>
      <div class={props.mono ? "mono" : ""} title={props.title}>
        {props.value}
      </div>
    </div>
  );
}
