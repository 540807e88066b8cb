import { useState } from "preact/hooks";
import { PERMISSIONS, unwrap, type Permission, type PortalSession } from "../api/client";
import { useApp } from "../context";
import { Field, Notice } from "../components/ui";
import { time } from "../format";

const LABELS: Record<Permission, string> = {
  view: "View endpoints, events and dead letters",
  manage_endpoints: "Create, edit, disable and test endpoints",
  view_secrets: "Reveal signing secrets",
  rotate_secrets: "Rotate signing secrets",
  replay: "Replay dead letters",
};

/** An admin makes a short-lived portal link for one tenant, to open or embed. */
export function PortalSessions() {
  const { client } = useApp();
  const [tenant, setTenant] = useState("");
  const [perms, setPerms] = useState<Permission[]>(["view"]);
  const [ttl, setTtl] = useState("3600");
  const [made, setMade] = useState<PortalSession>();
  const [error, setError] = useState<string>();
  return (
    <section aria-labelledby="ps-h">
      <h1 id="ps-h">Portal links</h1>
      <p class="muted">A link opens the consumer portal for one tenant with the permissions chosen here; every call it makes is checked by the API against them.</p>
      <form
        class="stack form"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(undefined);
          setMade(undefined);
          try {
            setMade(await unwrap(client.POST("/v1/portal/sessions", { body: { tenant, permissions: perms, ttl_seconds: Number(ttl) || undefined } }), "POST /v1/portal/sessions"));
          } catch (err) {
            setError(err instanceof Error ? err.message : String(err));
          }
        }}
      >
        <Field label="Tenant">
          <input type="text" name="tenant" required value={tenant} onInput={(e) => setTenant(e.currentTarget.value)} />
        </Field>
        <fieldset>
          <legend>Permissions</legend>
          {PERMISSIONS.map((p) => (
            <label key={p} class="check">
              <input type="checkbox" name="permissions" value={p} checked={perms.includes(p)} onChange={() => setPerms((x) => (x.includes(p) ? x.filter((y) => y !== p) : [...x, p]))} />{" "}
              {LABELS[p]}
            </label>
          ))}
        </fieldset>
        <Field label="Valid for (seconds)">
          <input type="number" name="ttl_seconds" min={60} value={ttl} onInput={(e) => setTtl(e.currentTarget.value)} />
        </Field>
        <div class="actions">
          <button type="submit" class="primary">
            Make link
          </button>
        </div>
      </form>
      {error && <Notice kind="error">{error}</Notice>}
      {made && (
        <Notice kind="ok">
          Valid until {time(made.expires_at)}. Give this link to the tenant (it holds the session; treat it as a password):
          <textarea class="mono" readOnly rows={3} aria-label="Portal link" value={made.url} />
        </Notice>
      )}
    </section>
  );
}
