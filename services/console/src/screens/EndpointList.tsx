import { problemText, type Stats } from "../api/client";
import { useApp } from "../context";
import { useCursor, useLoad } from "../components/load";
import { Loading, Pager } from "../components/ui";
import { href } from "../router";
import { HealthCell, StatsCells } from "./health";

const PAGE = 20;
const HOUR = 3_600_000;

export function EndpointList() {
  const { client, can, mode } = useApp();
  const cursor = useCursor("");
  // One call: the page and each endpoint's last hour.
  const page = useLoad(async () => {
    const { data, error, response } = await client.GET("/v1/endpoints", {
      params: { query: { limit: PAGE, after: cursor.after, stats_window_ms: HOUR } },
    });
    if (!data) throw new Error(problemText(error, response));
    return data;
  }, [cursor.after]);
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
      <Loading state={page}>
        {(p) =>
          p.data.length === 0 && cursor.page === 1 ? (
            <p class="muted">No endpoints yet.</p>
          ) : (
            <>
              <table class="grid-table">
                <caption class="sr-only">Endpoints with their health over the last hour</caption>
                <thead>
                  <tr>
                    <th scope="col">Endpoint</th>
                    <th scope="col">Event types</th>
                    {mode === "console" && <th scope="col">Tenant</th>}
                    <th scope="col">Health</th>
                    <th scope="col" class="num">Success (1 h)</th>
                    <th scope="col" class="num">p99</th>
                    <th scope="col" class="num">Attempts</th>
                  </tr>
                </thead>
                <tbody>
                  {p.data.map((e) => (
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
                </tbody>
              </table>
              <Pager page={cursor.page} next={p.next} onPrev={cursor.prev} onNext={cursor.next} />
            </>
          )
        }
      </Loading>
    </section>
  );
}
