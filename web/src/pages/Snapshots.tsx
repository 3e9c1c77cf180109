import { useState } from "preact/hooks";
import { api, formatAge, formatBytes, type Template } from "../api";
import { Confirm, ErrorLine, Link, PageHeader, usePoll } from "../ui";

/** SnapshotsPage lists the templates the team can create from; snapshots can be deleted. */
export function SnapshotsPage() {
  const list = usePoll(() => api.listTemplates(), 0);
  const [deleting, setDeleting] = useState<Template | null>(null);
  const sorted = list.data ? [...list.data].sort((a, b) => (a.type === b.type ? a.name.localeCompare(b.name) : a.type === "snapshot" ? -1 : 1)) : null;
  return (
    <div>
      <PageHeader
        title="Templates"
        sub="Base images, and snapshots of your sandboxes: a snapshot restores with its memory, processes and disk as they were."
      />
      <ErrorLine error={list.error} id="snapshots-error" />
      <div class="card table-card">
        <table class="table" id="snapshots-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Type</th>
              <th>Size</th>
              <th>On disk</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {sorted?.map((t) => (
              <tr key={t.name} data-testid="template-row" data-name={t.name} data-type={t.type}>
                <td class="strong mono">{t.name}</td>
                <td>
                  <span class={`tag tag-${t.type}`}>{t.type}</span>
                </td>
                <td class="nowrap">{t.vcpus ? `${t.vcpus} vCPU · ${t.memory_mb} MiB` : "any"}</td>
                <td>{t.size_bytes ? formatBytes(t.size_bytes) : "—"}</td>
                <td title={t.created_at}>{formatAge(t.created_at)}</td>
                <td class="actions">
                  {t.type === "snapshot" && (
                    <button class="btn btn-small btn-danger-ghost" data-testid="template-delete" onClick={() => setDeleting(t)}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {sorted && !sorted.some((t) => t.type === "snapshot") && (
              <tr>
                <td colSpan={6} class="empty-row" id="snapshots-empty">
                  No snapshots yet. Snapshot a running sandbox from <Link href="/sandboxes">Sandboxes</Link> to make one.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {deleting && (
        <Confirm
          title="Delete snapshot"
          body={
            <p>
              The template <code>{deleting.name}</code> and its files will be removed. Sandboxes made from it keep running.
            </p>
          }
          action="Delete"
          danger
          onConfirm={async () => {
            await api.deleteSnapshot(deleting.name);
            list.reload();
          }}
          onClose={() => setDeleting(null)}
        />
      )}
    </div>
  );
}
