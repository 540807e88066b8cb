import { useEffect, useState } from "preact/hooks";
import { problemText, unwrap, type EventTypeSeen } from "../api/client";
import { useApp } from "../context";
import { Code, Crumbs, Field, Notice } from "../components/ui";
import { href } from "../router";

interface Draft {
  url: string;
  description: string;
  tenant: string;
  eventTypes: string[];
  timeoutMs: string;
}

const EMPTY: Draft = { url: "", description: "", tenant: "", eventTypes: [], timeoutMs: "" };

/** Create (no id) or edit an endpoint. */
export function EndpointForm({ id }: { id?: string }) {
  const { client, mode, me } = useApp();
  const [draft, setDraft] = useState<Draft>(EMPTY);
  const [loaded, setLoaded] = useState(!id);
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<{ id: string; secret: string }>();
  const [saved, setSaved] = useState(false);
  const [seen, setSeen] = useState<EventTypeSeen[]>([]);
  const [typed, setTyped] = useState("");
  const portalTenant = mode === "portal" ? (me?.tenant ?? "") : "";

  useEffect(() => {
    // One chip per type, whichever tenants sent it; the most attempted first.
    const byType = (list: EventTypeSeen[]) => [...new Map(list.sort((a, b) => b.attempts - a.attempts).map((t) => [t.event_type, t])).values()];
    unwrap(client.GET("/v1/stats/event-types"), "GET /v1/stats/event-types").then((r) => setSeen(byType(r.data).slice(0, 50)), () => setSeen([]));
  }, [client]);
  useEffect(() => {
    if (!id) return;
    client.GET("/v1/endpoints/{id}", { params: { path: { id } } }).then(({ data, error: err, response }) => {
      if (!data) return setError(problemText(err, response));
      setDraft({ url: data.url, description: data.description, tenant: data.tenant, eventTypes: data.event_types, timeoutMs: data.timeout_ms ? String(data.timeout_ms) : "" });
      setLoaded(true);
    });
  }, [id, client]);

  const set = (patch: Partial<Draft>) => setDraft((d) => ({ ...d, ...patch }));
  const addType = (t: string) => {
    const v = t.trim();
    if (v && !draft.eventTypes.includes(v)) set({ eventTypes: [...draft.eventTypes, v] });
  };
  const toggleType = (t: string) => set({ eventTypes: draft.eventTypes.includes(t) ? draft.eventTypes.filter((x) => x !== t) : [...draft.eventTypes, t] });

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    const eventTypes = typed.trim() && !draft.eventTypes.includes(typed.trim()) ? [...draft.eventTypes, typed.trim()] : draft.eventTypes;
    if (eventTypes.length === 0) return setError("event_types: choose at least one event type or pattern");
    const timeout = draft.timeoutMs ? Number(draft.timeoutMs) : undefined;
    if (id) {
      const { error: err, response } = await client.PATCH("/v1/endpoints/{id}", {
        params: { path: { id } },
        body: { url: draft.url, description: draft.description, event_types: eventTypes, ...(mode === "console" ? { tenant: draft.tenant } : {}), timeout_ms: timeout },
      });
      if (!response.ok) return setError(problemText(err, response));
      setSaved(true);
    } else {
      const tenant = portalTenant || draft.tenant;
      const { data, error: err, response } = await client.POST("/v1/endpoints", {
        body: { url: draft.url, description: draft.description, event_types: eventTypes, ...(tenant ? { tenant } : {}), ...(timeout ? { timeout_ms: timeout } : {}) },
      });
      if (!data) return setError(problemText(err, response));
      setCreated({ id: data.id, secret: data.secret });
    }
  };

  if (created)
    return (
      <section aria-labelledby="form-h">
        <h1 id="form-h">Endpoint created</h1>
        <Notice kind="ok">
          Its signing secret, shown once here (and on demand later): <Code>{created.secret}</Code>
        </Notice>
        <p>
          <a class="button primary" href={href(`endpoints/${created.id}`)}>
            Open the endpoint
          </a>
        </p>
      </section>
    );
  if (!loaded) return error ? <Notice kind="error">{error}</Notice> : <p class="muted">Loading…</p>;
  return (
    <section aria-labelledby="form-h">
      <Crumbs to="endpoints">Endpoints</Crumbs>
      <h1 id="form-h">{id ? "Edit endpoint" : "New endpoint"}</h1>
      <form class="stack form" onSubmit={submit}>
        <Field label="URL" hint="Where the webhooks are POSTed (https; http only where the server allows it).">
          <input type="url" name="url" required value={draft.url} onInput={(e) => set({ url: e.currentTarget.value })} />
        </Field>
        <Field label="Description">
          <input type="text" name="description" value={draft.description} onInput={(e) => set({ description: e.currentTarget.value })} />
        </Field>
        {mode === "console" && (
          <Field label="Tenant" hint="Only this tenant's events; empty: every tenant.">
            <input type="text" name="tenant" value={draft.tenant} onInput={(e) => set({ tenant: e.currentTarget.value })} />
          </Field>
        )}
        <fieldset class="picker">
          <legend>Event types</legend>
          {draft.eventTypes.length > 0 ? (
            <ul class="chips" aria-label="Chosen event types">
              {draft.eventTypes.map((t) => (
                <li key={t}>
                  <span class="mono">{t}</span>
                  <button type="button" class="link" aria-label={`Remove ${t}`} onClick={() => toggleType(t)}>
                    ×
                  </button>
                </li>
              ))}
            </ul>
          ) : (
            <p class="muted small">None chosen yet.</p>
          )}
          <div class="inline">
            <label class="field grow">
              <span class="field-label">Add a type or pattern</span>
              <input
                type="text"
                name="event_type"
                list="seen-types"
                placeholder="order.created, order.*, *"
                value={typed}
                onInput={(e) => setTyped(e.currentTarget.value)}
                onKeyDown={(e) => {
                  if (e.key === "Enter") {
                    e.preventDefault();
                    addType(typed);
                    setTyped("");
                  }
                }}
              />
            </label>
            <button
              type="button"
              onClick={() => {
                addType(typed);
                setTyped("");
              }}
            >
              Add
            </button>
          </div>
          <datalist id="seen-types">
            {seen.map((s) => (
              <option key={s.event_type} value={s.event_type} />
            ))}
          </datalist>
          {seen.length > 0 && (
            <div class="seen" role="group" aria-label="Event types seen recently">
              <span class="muted small">Seen recently:</span>
              {seen.map((s) => (
                <button type="button" key={s.event_type} class="chip" aria-pressed={draft.eventTypes.includes(s.event_type)} onClick={() => toggleType(s.event_type)} title={`${s.attempts} attempts`}>
                  {s.event_type}
                </button>
              ))}
            </div>
          )}
        </fieldset>
        <Field label="Timeout (ms)" hint="Empty: the server's default.">
          <input type="number" name="timeout_ms" min={1} value={draft.timeoutMs} onInput={(e) => set({ timeoutMs: e.currentTarget.value })} />
        </Field>
        {error && <Notice kind="error">{error}</Notice>}
        {saved && <Notice kind="ok">Saved.</Notice>}
        <div class="actions">
          <button type="submit" class="primary">
            {id ? "Save" : "Create endpoint"}
          </button>
          <a class="button" href={href(id ? `endpoints/${id}` : "endpoints")}>
            Cancel
          </a>
        </div>
      </form>
    </section>
  );
}
