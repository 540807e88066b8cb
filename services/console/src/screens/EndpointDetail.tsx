import { useState } from "preact/hooks";
import { problemText, unwrap, type Attempt, type Endpoint, type Series } from "../api/client";
import { MissingRoute } from "../api/pending";
import { useApp } from "../context";
import { seriesFromAttempts, SeriesChart } from "../components/Chart";
import { Listing, num, Table } from "../components/list";
import { useLoad, usePaged } from "../components/load";
import { Code, Crumbs, Loading, Notice, StatusBadge } from "../components/ui";
import { ms, percent, time } from "../format";
import { href, go } from "../router";
import { HealthCell } from "./health";

export function EndpointDetail({ id }: { id: string }) {
  const { client } = useApp();
  const endpoint = useLoad(() => unwrap(client.GET("/v1/endpoints/{id}", { params: { path: { id } } }), "GET /v1/endpoints/{id}"), [id]);
  return (
    <Loading state={endpoint}>
      {(e) => (
        <section aria-labelledby="endpoint-h">
          <Crumbs to="endpoints">Endpoints</Crumbs>
          <div class="title-row">
            <h1 id="endpoint-h">{e.description || e.url}</h1>
            <HealthCell endpoint={e} />
          </div>
          <Actions endpoint={e} onChange={endpoint.reload} />
          <div class="cols">
            <Settings endpoint={e} />
            <StatsPanel id={e.id} />
          </div>
          <Activity id={e.id} />
          <RecentAttempts id={e.id} />
        </section>
      )}
    </Loading>
  );
}

function Settings({ endpoint: e }: { endpoint: Endpoint }) {
  return (
    <dl class="props card">
      <dt>URL</dt>
      <dd class="mono">{e.url}</dd>
      <dt>Id</dt>
      <dd class="mono">{e.id}</dd>
      <dt>Event types</dt>
      <dd>{e.event_types.join(", ")}</dd>
      <dt>Tenant</dt>
      <dd>{e.tenant || "every tenant"}</dd>
      <dt>Signing</dt>
      <dd>{e.signing}</dd>
      <dt>Timeout</dt>
      <dd>{e.timeout_ms ? ms(e.timeout_ms) : "the sender's default"}</dd>
      <dt>Retries</dt>
      <dd>{e.retry_schedule.length ? e.retry_schedule.join(", ") : "default schedule"}</dd>
      {Object.keys(e.headers).length > 0 && (
        <>
          <dt>Headers</dt>
          <dd class="mono small">{Object.entries(e.headers).map(([k, v]) => `${k}: ${v}`).join("\n")}</dd>
        </>
      )}
      <dt>Updated</dt>
      <dd>{time(e.updated_at)}</dd>
    </dl>
  );
}

function StatsPanel({ id }: { id: string }) {
  const { client } = useApp();
  const stats = useLoad(() => {
    const windows = [900_000, 3_600_000];
    return Promise.all(windows.map((w) => unwrap(client.GET("/v1/endpoints/{id}/stats", { params: { path: { id }, query: { window_ms: w } } }), "GET /v1/endpoints/{id}/stats")));
  }, [id]);
  return (
    <div class="card">
      <Loading state={stats}>
        {(list) => (
          <Table class="kv" head={["Window", num("Attempts"), num("Success"), num("p50"), num("p99")]}>
            {list.map((s) => (
              <tr key={s.window_ms}>
                <th scope="row">{s.window_ms / 60000} min</th>
                <td class="num">{s.attempts}</td>
                <td class="num">{percent(s.success_rate)}</td>
                <td class="num">{ms(s.latency_p50_ms)}</td>
                <td class="num">{ms(s.latency_p99_ms)}</td>
              </tr>
            ))}
          </Table>
        )}
      </Loading>
    </div>
  );
}

function Actions({ endpoint: e, onChange }: { endpoint: Endpoint; onChange: () => void }) {
  const { client, can } = useApp();
  const [message, setMessage] = useState<{ kind: "ok" | "error"; text: string }>();
  const [secret, setSecret] = useState<string>();
  const [confirm, setConfirm] = useState<"rotate" | "delete">();
  const [busy, setBusy] = useState(false);
  const run = async (what: () => Promise<string | undefined>) => {
    setBusy(true);
    setMessage(undefined);
    try {
      const text = await what();
      if (text) setMessage({ kind: "ok", text });
    } catch (err) {
      setMessage({ kind: "error", text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
      setConfirm(undefined);
    }
  };
  // Called, not mounted as components: a component defined here would be a new type, and so
  // remounted, on every render.
  const action = (label: string, what: () => Promise<string | undefined>, danger?: boolean) => (
    <button type="button" class={danger ? "danger" : undefined} disabled={busy} onClick={() => run(what)}>
      {label}
    </button>
  );
  /** A button that asks first: its label, then `confirmLabel`, which does it. */
  const confirmed = (step: "rotate" | "delete", label: string, confirmLabel: string, what: () => Promise<string | undefined>) =>
    confirm === step ? (
      action(confirmLabel, what, true)
    ) : (
      <button type="button" disabled={busy} onClick={() => setConfirm(step)}>
        {label}
      </button>
    );
  const path = { path: { id: e.id } };
  return (
    <div class="actions-block">
      <div class="actions" role="group" aria-label="Endpoint actions">
        {can("manage_endpoints") && (
          <>
            <a class="button" href={href(`endpoints/${e.id}/edit`)}>
              Edit
            </a>
            {action(e.enabled ? "Disable" : "Enable", async () => {
              await unwrap(client.PATCH("/v1/endpoints/{id}", { params: path, body: { enabled: !e.enabled } }), "PATCH /v1/endpoints/{id}");
              onChange();
              return e.enabled ? "Disabled: nothing is delivered to it until it is enabled." : "Enabled.";
            })}
            {action("Send test event", async () => {
              const sent = await unwrap(client.POST("/v1/endpoints/{id}/test", { params: path, body: {} }), "POST /v1/endpoints/{id}/test");
              return `Test event ${sent.id} sent.`;
            })}
          </>
        )}
        {can("view_secrets") &&
          (secret === undefined ? (
            action("Reveal secret", async () => {
              setSecret((await unwrap(client.GET("/v1/endpoints/{id}/secret", { params: path }), "GET /v1/endpoints/{id}/secret")).secret);
              return undefined;
            })
          ) : (
            <button type="button" onClick={() => setSecret(undefined)}>
              Hide secret
            </button>
          ))}
        {can("rotate_secrets") &&
          confirmed("rotate", "Rotate secret", "Confirm rotation", async () => {
            const rotated = await unwrap(client.POST("/v1/endpoints/{id}/secret/rotate", { params: path }), "POST /v1/endpoints/{id}/secret/rotate");
            setSecret(rotated.secret);
            return `Secret rotated. The previous one also signs until ${time(rotated.previous_expires_at)}.`;
          })}
        {can("manage_endpoints") &&
          confirmed("delete", "Delete", "Confirm delete", async () => {
            // 204: no body to unwrap.
            const { error, response } = await client.DELETE("/v1/endpoints/{id}", { params: path });
            if (!response.ok) throw new Error(problemText(error, response));
            go("endpoints");
            return undefined;
          })}
        {confirm && (
          <button type="button" onClick={() => setConfirm(undefined)}>
            Cancel
          </button>
        )}
      </div>
      {secret !== undefined && (
        <p class="secret" aria-live="polite">
          Signing secret: <Code>{secret}</Code>
        </p>
      )}
      {message && <Notice kind={message.kind}>{message.text}</Notice>}
    </div>
  );
}

/** Deliveries and latency over the last hour; from the last attempts when the API has no series route. */
function Activity({ id }: { id: string }) {
  const { client } = useApp();
  const series = useLoad(async (): Promise<{ series: Series; approximate: boolean }> => {
    try {
      const series = await unwrap(client.GET("/v1/endpoints/{id}/series", { params: { path: { id }, query: { minutes: 60 } } }), "GET /v1/endpoints/{id}/series");
      return { series, approximate: false };
    } catch (e) {
      if (!(e instanceof MissingRoute)) throw e;
      const attempts = await unwrap(client.GET("/v1/endpoints/{id}/attempts", { params: { path: { id }, query: { limit: 500 } } }), "GET /v1/endpoints/{id}/attempts");
      return { series: seriesFromAttempts(attempts.data), approximate: true };
    }
  }, [id]);
  return (
    <section aria-labelledby="activity-h" class="card">
      <h2 id="activity-h">Last hour</h2>
      <Loading state={series}>
        {(s) => (
          <>
            <SeriesChart series={s.series} title="Deliveries and latency, last hour" />
            {s.approximate && <p class="muted small">Built from the endpoint's most recent attempts (this Hookline has no series route yet).</p>}
          </>
        )}
      </Loading>
    </section>
  );
}

const ATTEMPTS_PAGE = 20;

function RecentAttempts({ id }: { id: string }) {
  const { client } = useApp();
  const [page, cursor] = usePaged(
    (after) => unwrap(client.GET("/v1/endpoints/{id}/attempts", { params: { path: { id }, query: { limit: ATTEMPTS_PAGE, after } } }), "GET /v1/endpoints/{id}/attempts"),
    [id],
  );
  return (
    <section aria-labelledby="attempts-h">
      <h2 id="attempts-h">Recent attempts</h2>
      <Listing state={page} cursor={cursor} empty="No attempts.">
        {(rows) => <AttemptTable attempts={rows} />}
      </Listing>
    </section>
  );
}

function AttemptTable({ attempts }: { attempts: Attempt[] }) {
  return (
    <Table head={["At", "Event", "#", "Outcome", num("HTTP"), num("Latency"), "Error"]}>
      {attempts.map((a) => (
        <tr key={`${a.event_id}-${a.attempt}-${a.at}`}>
          <td class="small">{time(a.at)}</td>
          <td class="small">
            <a class="mono" href={href(`events/${a.event_id}`)}>
              {a.event_id}
            </a>{" "}
            <span class="muted">{a.event_type}</span>
          </td>
          <td>{a.attempt}</td>
          <td>
            <StatusBadge status={a.outcome} />
          </td>
          <td class="num">{a.status || "—"}</td>
          <td class="num">{ms(a.latency_ms)}</td>
          <td class="small">{a.error}</td>
        </tr>
      ))}
    </Table>
  );
}
