import { unwrap, type Attempt, type Delivery } from "../api/client";
import { useApp } from "../context";
import { useLoad } from "../components/load";
import { Crumbs, Loading, StatusBadge } from "../components/ui";
import { ago, ms, time } from "../format";
import { href } from "../router";

/** One event's fan-out: every endpoint it went to, and each attempt in detail. */
export function EventDetail({ id }: { id: string }) {
  const { client } = useApp();
  const state = useLoad(async () => {
    const [attempts, summary] = await Promise.all([
      unwrap(client.GET("/v1/events/{id}/attempts", { params: { path: { id } } }), "GET /v1/events/{id}/attempts").then((r) => r.data),
      // The event log's summary (its status per endpoint); older servers have none.
      client.GET("/v1/events", { params: { query: { event_id: id, limit: 1 } } }).then(
        ({ data }) => data?.data.find((e) => e.event_id === id),
        () => undefined,
      ),
    ]);
    const byEndpoint = new Map<string, Attempt[]>();
    for (const d of summary?.deliveries ?? []) byEndpoint.set(d.endpoint_id, []);
    for (const a of attempts) byEndpoint.set(a.endpoint_id, [...(byEndpoint.get(a.endpoint_id) ?? []), a]);
    for (const list of byEndpoint.values()) list.sort((a, b) => a.attempt - b.attempt || a.at - b.at);
    return { summary, byEndpoint, type: summary?.event_type ?? attempts[0]?.event_type };
  }, [id]);
  return (
    <section aria-labelledby="event-h">
      <Crumbs to="events">Event log</Crumbs>
      <h1 id="event-h" class="mono">
        {id}
      </h1>
      <Loading state={state}>
        {({ summary, byEndpoint, type }) => (
          <>
            <p>
              {type && <span class="mono">{type}</span>} {summary && <StatusBadge status={summary.status} />}{" "}
              {summary?.tenant && <span class="muted">tenant {summary.tenant}</span>}
            </p>
            {byEndpoint.size === 0 ? (
              <p class="muted">No attempts recorded for this event (yet, or it matched no endpoint, or it is older than the history kept).</p>
            ) : (
              [...byEndpoint].map(([endpointId, attempts]) => (
                <DeliveryCard key={endpointId} endpointId={endpointId} attempts={attempts} delivery={summary?.deliveries.find((d) => d.endpoint_id === endpointId)} />
              ))
            )}
          </>
        )}
      </Loading>
    </section>
  );
}

function DeliveryCard({ endpointId, attempts, delivery }: { endpointId: string; attempts: Attempt[]; delivery?: Delivery }) {
  const last = attempts[attempts.length - 1];
  const next = delivery?.next_attempt_at ?? last?.next_attempt_at;
  // Without the event log's own status (older servers), a guess from the last attempt.
  const status = delivery?.status ?? (last?.outcome === "success" ? "delivered" : next || !last ? "pending" : "failed");
  return (
    <article class="card delivery" aria-label={`Delivery to ${endpointId}`}>
      <header class="title-row">
        <h2 class="h3">
          <a class="mono" href={href(`endpoints/${endpointId}`)}>
            {endpointId}
          </a>
        </h2>
        <StatusBadge status={status} />
        <span class="muted small">
          {attempts.length} attempt{attempts.length === 1 ? "" : "s"}
          {next ? ` · next retry ${time(next)} (${ago(next)})` : ""}
        </span>
      </header>
      {attempts.map((a) => (
        <details key={`${a.attempt}-${a.at}`} class="attempt" open={a === last}>
          <summary>
            <span>#{a.attempt}</span> <StatusBadge status={a.outcome} /> <span class="mono">{a.status || "no response"}</span>{" "}
            <span>{ms(a.latency_ms)}</span> <span class="muted small">{time(a.at)}</span>
            {a.error && <span class="small err"> {a.error}</span>}
          </summary>
          <dl class="props">
            <dt>URL</dt>
            <dd class="mono">{a.url || "—"}</dd>
            {a.error && (
              <>
                <dt>Error</dt>
                <dd>{a.error}</dd>
              </>
            )}
            {a.next_attempt_at && (
              <>
                <dt>Next attempt</dt>
                <dd>{time(a.next_attempt_at)}</dd>
              </>
            )}
            <dt>Request headers</dt>
            <dd>
              {a.request_headers ? (
                <table class="headers">
                  <tbody>
                    {Object.entries(a.request_headers).map(([k, v]) => (
                      <tr key={k}>
                        <th scope="row" class="mono">
                          {k}
                        </th>
                        <td class="mono">{v}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <span class="muted">not recorded by this Hookline</span>
              )}
            </dd>
            <dt>Response</dt>
            <dd>{a.response_excerpt ? <pre class="excerpt">{a.response_excerpt}</pre> : <span class="muted">{a.response_excerpt === "" ? "empty body" : "not recorded"}</span>}</dd>
          </dl>
        </details>
      ))}
      {attempts.length === 0 && <p class="muted small">No attempt yet{next ? `; the first at ${time(next)}` : ""}.</p>}
    </article>
  );
}

