import { useState } from "preact/hooks";
import { problemText, unwrap, type DeadLetter, type Query, type Schemas } from "../api/client";
import { useApp } from "../context";
import { FilterForm, filtersIn, unixMs, type Filter } from "../components/filters";
import { Listing, num, Table } from "../components/list";
import { usePaged } from "../components/load";
import { Notice } from "../components/ui";
import { time } from "../format";
import { go, href } from "../router";

const PAGE = 50;

type ReplayRequest = Schemas["CreateReplay"];

const FILTERS = [
  { name: "endpoint_id", label: "Endpoint id" },
  {
    name: "reason",
    label: "Reason",
    // DeadLetterReason in proto/hookline/v1/hookline.proto, as the API names them.
    options: [
      "exhausted",
      "permanent_failure",
      "endpoint_gone",
      "blocked_by_policy",
      "endpoint_not_found",
      "endpoint_disabled",
      "undecodable_event",
      "invalid_event",
      "payload_too_large",
    ],
  },
  { name: "event_type", label: "Event type" },
  { name: "from", label: "From", kind: "time" },
  { name: "to", label: "To", kind: "time" },
] as const satisfies readonly Filter[];

function lastAnswer(d: DeadLetter): string {
  const status = d.last_status ? `HTTP ${d.last_status}` : "";
  const error = d.last_error ?? "";
  return error.includes(status) ? error : [status, error].filter(Boolean).join(": ");
}

const keyOf = (d: DeadLetter) => `${d.source_partition}:${d.source_offset}`;

export function DeadLetters({ query }: { query: URLSearchParams }) {
  const { client, can } = useApp();
  const filters = filtersIn(query, FILTERS);
  const [selected, setSelected] = useState<Map<string, DeadLetter>>(new Map());
  const [message, setMessage] = useState<{ kind: "ok" | "error"; text: string }>();
  const [page, cursor] = usePaged((after) => {
    const q: Query<"list_dead_letters"> = {
      limit: PAGE,
      after,
      endpoint_id: filters.endpoint_id,
      reason: filters.reason,
      event_type: filters.event_type,
      from: unixMs(filters.from),
      to: unixMs(filters.to),
    };
    return unwrap(client.GET("/v1/dlq", { params: { query: q } }), "GET /v1/dlq");
  }, [filters]);

  const replay = async (body: ReplayRequest) => {
    setMessage(undefined);
    const { data, error, response } = await client.POST("/v1/replays", { body });
    if (!data) return setMessage({ kind: "error", text: problemText(error, response) });
    setSelected(new Map());
    go(`replays/${data.id}`);
  };
  const replayLetters = (letters: DeadLetter[]) => {
    const ids = letters.map((d) => d.event_id).filter((x): x is string => !!x);
    if (ids.length === 0) return setMessage({ kind: "error", text: "These dead letters have no event id: they cannot be replayed." });
    const endpoints = new Set(letters.map((d) => d.endpoint_id));
    const times = letters.map((d) => d.dead_at);
    const [only] = endpoints;
    return replay({
      source: "dlq",
      event_ids: ids,
      endpoint_id: endpoints.size === 1 && only ? only : undefined,
      from: Math.min(...times),
      to: Math.max(...times) + 1,
    });
  };
  const replayMatching = () =>
    replay({
      source: "dlq",
      endpoint_id: filters.endpoint_id || undefined,
      event_types: filters.event_type ? [filters.event_type] : undefined,
      reasons: filters.reason ? [filters.reason] : undefined,
      from: unixMs(filters.from) ?? 0,
      to: unixMs(filters.to),
    });

  const toggle = (d: DeadLetter) =>
    setSelected((s) => {
      const n = new Map(s);
      if (n.has(keyOf(d))) n.delete(keyOf(d));
      else n.set(keyOf(d), d);
      return n;
    });

  return (
    <section aria-labelledby="dlq-h">
      <h1 id="dlq-h">Dead letters</h1>
      <FilterForm path="dlq" label="Filter dead letters" submit="Filter" filters={FILTERS} values={filters} />
      {message && <Notice kind={message.kind}>{message.text}</Notice>}
      {can("replay") && page.data && (
        <div class="actions" role="group" aria-label="Replay">
          <button type="button" class="primary" disabled={selected.size === 0} onClick={() => replayLetters([...selected.values()])}>
            Replay selected ({selected.size})
          </button>
          <button type="button" disabled={page.data.data.length === 0} onClick={replayMatching}>
            Replay all matching
          </button>
        </div>
      )}
      <Listing state={page} cursor={cursor} empty="No dead letters match.">
        {(rows) => {
          const allOnPage = rows.length > 0 && rows.every((d) => selected.has(keyOf(d)));
          return (
            <Table
              caption="Dead letters"
              head={[
                can("replay") && (
                  <th scope="col">
                    <input
                      type="checkbox"
                      aria-label="Select every dead letter on this page"
                      checked={allOnPage}
                      onChange={() =>
                        setSelected((s) => {
                          const n = new Map(s);
                          for (const d of rows) allOnPage ? n.delete(keyOf(d)) : n.set(keyOf(d), d);
                          return n;
                        })
                      }
                    />
                  </th>
                ),
                "Dead at",
                "Event",
                "Endpoint",
                "Reason",
                num("Attempts"),
                "Last answer",
                can("replay") && "Replay",
              ]}
            >
              {rows.map((d) => (
                <tr key={keyOf(d)}>
                  {can("replay") && (
                    <td>
                      <input type="checkbox" aria-label={`Select ${d.event_id ?? keyOf(d)}`} checked={selected.has(keyOf(d))} onChange={() => toggle(d)} />
                    </td>
                  )}
                  <td class="small">{time(d.dead_at)}</td>
                  <td class="small">
                    {d.event_id ? (
                      <a class="mono" href={href(`events/${encodeURIComponent(d.event_id)}`)}>
                        {d.event_id}
                      </a>
                    ) : (
                      <span class="muted">—</span>
                    )}
                    <div class="muted">{d.event_type}</div>
                  </td>
                  <td class="small mono">{d.endpoint_id ? <a href={href(`endpoints/${d.endpoint_id}`)}>{d.endpoint_id}</a> : "—"}</td>
                  <td class="small">
                    {d.reason}
                    {d.detail && <div class="muted">{d.detail}</div>}
                  </td>
                  <td class="num">{d.attempts}</td>
                  <td class="small">
                    {lastAnswer(d)}
                  </td>
                  {can("replay") && (
                    <td>
                      <button type="button" disabled={!d.event_id} onClick={() => replayLetters([d])} aria-label={`Replay ${d.event_id ?? ""}`}>
                        Replay
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </Table>
          );
        }}
      </Listing>
    </section>
  );
}
