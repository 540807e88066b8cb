import { useEffect, useState } from "preact/hooks";
import { unwrap, type EventSummary, type Query } from "../api/client";
import { useApp } from "../context";
import { Listing } from "../components/list";
import { usePaged } from "../components/load";
import { Field, StatusBadge } from "../components/ui";
import { fromLocalInput, time, toLocalInput } from "../format";
import { go, href } from "../router";

const PAGE = 25;
const FIRST_ROWS = "hookline:event-log-first-rows";
const FIELDS = ["event_id", "endpoint_id", "event_type", "tenant", "status", "from", "to"] as const;
type Filters = Partial<Record<(typeof FIELDS)[number], string>>;

export function EventLog({ query }: { query: URLSearchParams }) {
  const { mode, client } = useApp();
  const filters: Filters = {};
  for (const f of FIELDS) filters[f] = query.get(f) ?? undefined;
  const key = FIELDS.map((f) => filters[f] ?? "").join("|");
  const [page, cursor] = usePaged(
    (after) => {
      const query: Query<"search_events"> = {
        ...filters,
        from: filters.from ? Number(filters.from) : undefined,
        to: filters.to ? Number(filters.to) : undefined,
        after,
        limit: PAGE,
      };
      return unwrap(client.GET("/v1/events", { params: { query } }), "GET /v1/events");
    },
    [key],
  );
  const rows = page.data?.data.length ?? 0;
  useEffect(() => {
    // For the first-render measurement (docs/console.md): the moment the first rows are on screen.
    if (rows > 0 && performance.getEntriesByName(FIRST_ROWS).length === 0) performance.mark(FIRST_ROWS);
  }, [rows]);
  return (
    <section aria-labelledby="events-h">
      <h1 id="events-h">Event log</h1>
      <SearchForm initial={filters} />
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
          <table class="grid-table events">
            <caption class="sr-only">Events, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Type</th>
                {mode === "console" && <th scope="col">Tenant</th>}
                <th scope="col">Status</th>
                <th scope="col">Endpoints</th>
                <th scope="col">Last attempt</th>
              </tr>
            </thead>
            <tbody>
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
            </tbody>
          </table>
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

function SearchForm({ initial }: { initial: Filters }) {
  const { mode } = useApp();
  const [f, setF] = useState<Filters>(initial);
  const set = (patch: Filters) => setF((x) => ({ ...x, ...patch }));
  return (
    <form
      class="filters"
      aria-label="Search events"
      onSubmit={(e) => {
        e.preventDefault();
        go("events", f);
      }}
    >
      <Field label="Event id">
        <input type="text" name="event_id" value={f.event_id ?? ""} onInput={(e) => set({ event_id: e.currentTarget.value })} />
      </Field>
      <Field label="Endpoint id">
        <input type="text" name="endpoint_id" value={f.endpoint_id ?? ""} onInput={(e) => set({ endpoint_id: e.currentTarget.value })} />
      </Field>
      <Field label="Event type">
        <input type="text" name="event_type" value={f.event_type ?? ""} onInput={(e) => set({ event_type: e.currentTarget.value })} />
      </Field>
      {mode === "console" && (
        <Field label="Tenant">
          <input type="text" name="tenant" value={f.tenant ?? ""} onInput={(e) => set({ tenant: e.currentTarget.value })} />
        </Field>
      )}
      <Field label="Status">
        <select name="status" value={f.status ?? ""} onChange={(e) => set({ status: e.currentTarget.value || undefined })}>
          <option value="">any</option>
          <option value="delivered">delivered</option>
          <option value="pending">pending</option>
          <option value="dead">dead</option>
        </select>
      </Field>
      <Field label="From">
        <input type="datetime-local" name="from" value={toLocalInput(Number(f.from) || undefined)} onInput={(e) => set({ from: String(fromLocalInput(e.currentTarget.value) ?? "") })} />
      </Field>
      <Field label="To">
        <input type="datetime-local" name="to" value={toLocalInput(Number(f.to) || undefined)} onInput={(e) => set({ to: String(fromLocalInput(e.currentTarget.value) ?? "") })} />
      </Field>
      <div class="filter-actions">
        <button type="submit" class="primary">
          Search
        </button>
        <button
          type="button"
          onClick={() => {
            setF({});
            go("events");
          }}
        >
          Clear
        </button>
        {f.event_id && (
          <a class="button" href={href(`events/${encodeURIComponent(f.event_id)}`)}>
            Open event
          </a>
        )}
      </div>
    </form>
  );
}

