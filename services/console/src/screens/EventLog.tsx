import { useEffect } from "preact/hooks";
import { unwrap, type EventSummary, type Query } from "../api/client";
import { useApp } from "../context";
import { FilterForm, filtersIn, unixMs, type Filter } from "../components/filters";
import { Listing, Table } from "../components/list";
import { usePaged } from "../components/load";
import { StatusBadge } from "../components/ui";
import { time } from "../format";
import { href } from "../router";

const PAGE = 25;
const FIRST_ROWS = "hookline:event-log-first-rows";
const FILTERS = [
  { name: "event_id", label: "Event id" },
  { name: "endpoint_id", label: "Endpoint id" },
  { name: "event_type", label: "Event type" },
  { name: "tenant", label: "Tenant" },
  { name: "status", label: "Status", kind: "choice", options: ["delivered", "pending", "dead"] },
  { name: "from", label: "From", kind: "time" },
  { name: "to", label: "To", kind: "time" },
] as const satisfies readonly Filter[];
// A portal session sees one tenant: the server scopes its searches.
const PORTAL_FILTERS = FILTERS.filter((f) => f.name !== "tenant");

export function EventLog({ query }: { query: URLSearchParams }) {
  const { mode, client } = useApp();
  const filters = filtersIn(query, FILTERS);
  const [page, cursor] = usePaged(
    (after) => {
      const query: Query<"search_events"> = {
        ...filters,
        from: unixMs(filters.from),
        to: unixMs(filters.to),
        after,
        limit: PAGE,
      };
      return unwrap(client.GET("/v1/events", { params: { query } }), "GET /v1/events");
    },
    [filters],
  );
  const rows = page.data?.data.length ?? 0;
  useEffect(() => {
    // For the first-render measurement (docs/console.md): the moment the first rows are on screen.
    if (rows > 0 && performance.getEntriesByName(FIRST_ROWS).length === 0) performance.mark(FIRST_ROWS);
  }, [rows]);
  return (
    <section aria-labelledby="events-h">
      <h1 id="events-h">Event log</h1>
      <FilterForm path="events" label="Search events" submit="Search" filters={mode === "console" ? FILTERS : PORTAL_FILTERS} values={filters}>
        {(draft) =>
          draft.event_id && (
            <a class="button" href={href(`events/${encodeURIComponent(draft.event_id)}`)}>
              Open event
            </a>
          )
        }
      </FilterForm>
      <Listing
        state={page}
        cursor={cursor}
        empty="No events match."
        missing={(route) => (
          <>
            Searching needs <code>{route}</code>, which this Hookline does not serve yet. Looking up one event by its id works: fill in “Event id”.
          </>
        )}
      >
        {(rows) => (
          <Table caption="Events, newest first" class="grid-table events" head={["Event", "Type", mode === "console" && "Tenant", "Status", "Endpoints", "Last attempt"]}>
            {rows.map((e) => (
              <tr key={e.event_id} data-event-id={e.event_id}>
                <td>
                  <a class="mono small" href={href(`events/${encodeURIComponent(e.event_id)}`)}>
                    {e.event_id}
                  </a>
                </td>
                <td class="small">{e.event_type}</td>
                {mode === "console" && <td class="small">{e.tenant || "—"}</td>}
                <td>
                  <StatusBadge status={e.status} />
                </td>
                <td class="small">{fanOut(e)}</td>
                <td class="small">{time(e.last_attempt_at)}</td>
              </tr>
            ))}
          </Table>
        )}
      </Listing>
    </section>
  );
}

function fanOut(e: EventSummary): string {
  const by = new Map<string, number>();
  for (const d of e.deliveries) by.set(d.status, (by.get(d.status) ?? 0) + 1);
  return e.deliveries.length === 0 ? "none" : [...by].map(([s, n]) => `${n} ${s}`).join(" · ");
}
