import { unwrap, type Stats } from "../api/client";
import { useApp } from "../context";
import { Listing, num, Table } from "../components/list";
import { usePaged } from "../components/load";
import { href } from "../router";
import { HealthCell, StatsCells } from "./health";

const PAGE = 20;
const HOUR = 3_600_000;

export function EndpointList() {
  const { client, can, mode } = useApp();
  // One call: the page and each endpoint's last hour.
  const [page, cursor] = usePaged((after) => unwrap(client.GET("/v1/endpoints", { params: { query: { limit: PAGE, after, stats_window_ms: HOUR } } }), "GET /v1/endpoints"), []);
  const stats: Record<string, Stats> = page.data?.stats ?? {};
  return (
    <section aria-labelledby="endpoints-h">
      <div class="title-row">
        <h1 id="endpoints-h">Endpoints</h1>
        {can("manage_endpoints") && (
          <a class="button primary" href={href("endpoints/new")}>
            New endpoint
          </a>
        )}
      </div>
      <Listing state={page} cursor={cursor} empty="No endpoints yet.">
        {(rows) => (
          <Table caption="Endpoints with their health over the last hour" head={["Endpoint", "Event types", mode === "console" && "Tenant", "Health", num("Success (1 h)"), num("p99"), num("Attempts")]}>
            {rows.map((e) => (
              <tr key={e.id}>
                <td>
                  <a href={href(`endpoints/${e.id}`)}>{e.description || e.url}</a>
                  <div class="muted small mono">{e.description ? e.url : e.id}</div>
                </td>
                <td class="small">{e.event_types.join(", ")}</td>
                {mode === "console" && <td class="small">{e.tenant || <span class="muted">every tenant</span>}</td>}
                <td>
                  <HealthCell endpoint={e} stats={stats[e.id]} />
                </td>
                <StatsCells stats={stats[e.id]} />
              </tr>
            ))}
          </Table>
        )}
      </Listing>
    </section>
  );
}
