import { useState } from "preact/hooks";
import { api, formatAge, type Sandbox } from "../api";
import { SandboxActions } from "../components/SandboxActions";
import { ErrorLine, Link, navigate, PageHeader, StatusBadge, usePoll } from "../ui";

const pollMs = 2000;

/** SandboxesPage lists the team's sandboxes, their status kept live by polling. */
export function SandboxesPage() {
  const [showStopped, setShowStopped] = useState(false);
  const list = usePoll(
    () => api.listSandboxes(showStopped ? "pending,running,paused,missing,error,stopped" : undefined),
    pollMs,
    [showStopped],
  );
  const [busy, setBusy] = useState<Record<string, string | null>>({});

  return (
    <div>
      <PageHeader title="Sandboxes" sub="MicroVMs of your team, newest first. Statuses refresh every 2 seconds.">
        <label class="check">
          <input type="checkbox" id="show-stopped" checked={showStopped} onChange={(e) => setShowStopped(e.currentTarget.checked)} />
          Show stopped
        </label>
        <Link href="/sandboxes/new" class="btn btn-primary" id="sandbox-new">
          New sandbox
        </Link>
      </PageHeader>
      <ErrorLine error={list.error} id="sandboxes-error" />
      <div class="card table-card">
        <table class="table" id="sandboxes-table">
          <thead>
            <tr>
              <th>ID</th>
              <th>Status</th>
              <th>Template</th>
              <th>Size</th>
              <th>Timeout</th>
              <th>Metadata</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data?.map((sb) => (
              <Row key={sb.id} sb={sb} busy={busy[sb.id] ?? null} setBusy={(b) => setBusy((m) => ({ ...m, [sb.id]: b }))} onChanged={list.reload} />
            ))}
            {list.data && list.data.length === 0 && (
              <tr>
                <td colSpan={8} class="empty-row" id="sandboxes-empty">
                  No sandboxes yet. <Link href="/sandboxes/new">Create one</Link> to get a microVM in a second or two.
                </td>
              </tr>
            )}
            {!list.data && !list.error && (
              <tr>
                <td colSpan={8} class="empty-row">
                  Loading…
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function Row(props: { sb: Sandbox; busy: string | null; setBusy: (b: string | null) => void; onChanged: () => void }) {
  const sb = props.sb;
  const meta = Object.entries(sb.metadata ?? {});
  return (
    <tr data-testid="sandbox-row" data-id={sb.id} data-status={sb.status} class="clickable" onClick={(e) => {
      if ((e.target as HTMLElement).closest("button, a, .modal-backdrop")) return;
      navigate(`/sandboxes/${sb.id}`);
    }}>
      <td>
        <Link href={`/sandboxes/${sb.id}`} class="mono strong" data-testid="sandbox-link">
          {sb.id}
        </Link>
      </td>
      <td>
        <StatusBadge status={sb.status} busy={props.busy ?? undefined} />
      </td>
      <td>{sb.template}</td>
      <td class="nowrap">
        {sb.vcpus} vCPU · {sb.memory_mb} MiB
      </td>
      <td class="nowrap">{sb.timeout_sec ? `${sb.timeout_sec}s → ${sb.auto_pause ? "pause" : "destroy"}` : "none"}</td>
      <td>
        {meta.length === 0 ? (
          <span class="muted">—</span>
        ) : (
          meta.map(([k, v]) => (
            <span class="tag" key={k}>
              {k}={v}
            </span>
          ))
        )}
      </td>
      <td class="nowrap" title={sb.created_at}>
        {formatAge(sb.created_at)}
      </td>
      <td class="actions">
        <SandboxActions sandbox={sb} compact onChanged={props.onChanged} onBusy={props.setBusy} />
      </td>
    </tr>
  );
}
