import { useState } from "preact/hooks";
import { api, formatAge, type APIKey, type ApiError } from "../api";
import { asApiError, Confirm, CopyButton, ErrorLine, PageHeader, usePoll } from "../ui";

/** KeysPage lists the team's API keys, makes new ones (shown once) and deletes them. */
export function KeysPage() {
  const keys = usePoll(api.listKeys, 0);
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [created, setCreated] = useState<APIKey | null>(null);
  const [deleting, setDeleting] = useState<APIKey | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const k = await api.createKey(name.trim());
      setCreated(k);
      setName("");
      keys.reload();
    } catch (err) {
      setError(asApiError(err));
    }
    setBusy(false);
  };

  return (
    <div>
      <PageHeader
        title="API keys"
        sub="Keys let programs, the SDKs and the CLI act for your team. A key is shown once, when it is made."
      />
      <form class="card inline-form" onSubmit={create}>
        <label class="grow">
          New key name
          <input
            id="key-name"
            placeholder="e.g. laptop, ci, agent-runner"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
        <button class="btn btn-primary" id="key-create" disabled={busy}>
          {busy ? "Creating…" : "Create key"}
        </button>
      </form>
      <ErrorLine error={error} id="key-error" />
      {created?.key && (
        <div class="card secret" id="new-key-box">
          <div class="secret-head">
            <strong>Your new key “{created.name}”</strong>
            <button class="btn btn-small btn-ghost" onClick={() => setCreated(null)} id="new-key-dismiss">
              Done
            </button>
          </div>
          <p class="muted">Copy it now: Wrenn keeps only its hash and cannot show it again.</p>
          <div class="secret-value">
            <code id="new-key" data-testid="new-key">
              {created.key}
            </code>
            <CopyButton text={created.key} id="new-key-copy" />
          </div>
        </div>
      )}
      <ErrorLine error={keys.error} />
      <div class="card table-card">
        <table class="table" id="keys-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Key</th>
              <th>Created</th>
              <th>Last used</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {keys.data?.map((k) => (
              <tr key={k.id} data-testid="key-row" data-id={k.id} data-name={k.name}>
                <td class="strong">{k.name}</td>
                <td>
                  <code>{k.key_prefix}</code>
                </td>
                <td title={k.created_at}>{formatAge(k.created_at)}</td>
                <td title={k.last_used ?? ""}>{k.last_used ? formatAge(k.last_used) : "never"}</td>
                <td class="actions">
                  <button class="btn btn-small btn-danger-ghost" data-testid="key-delete" onClick={() => setDeleting(k)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
            {keys.data && keys.data.length === 0 && (
              <tr>
                <td colSpan={5} class="empty-row">
                  No API keys yet.
                </td>
              </tr>
            )}
            {!keys.data && !keys.error && (
              <tr>
                <td colSpan={5} class="empty-row">
                  Loading…
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {deleting && (
        <Confirm
          title="Delete API key"
          body={
            <p>
              Programs using <code>{deleting.key_prefix}</code> (“{deleting.name}”) will be refused from now on.
            </p>
          }
          action="Delete key"
          danger
          onConfirm={async () => {
            await api.deleteKey(deleting.id);
            if (created?.id === deleting.id) setCreated(null);
            keys.reload();
          }}
          onClose={() => setDeleting(null)}
        />
      )}
    </div>
  );
}
