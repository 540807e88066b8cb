import { unwrap } from "../api/client";
import { useApp } from "../context";
import { SeriesChart } from "../components/Chart";
import { Listing, num, Table } from "../components/list";
import { useInterval, useLoad } from "../components/load";
import { Loading } from "../components/ui";
import { ago } from "../format";
import { href } from "../router";

export function Overview() {
  const { client } = useApp();
  const throughput = useLoad(() => unwrap(client.GET("/v1/stats/throughput", { params: { query: { minutes: 60 } } }), "GET /v1/stats/throughput"), []);
  const types = useLoad(() => unwrap(client.GET("/v1/stats/event-types"), "GET /v1/stats/event-types"), []);
  useInterval(throughput.reload, 10_000);
  return (
    <section aria-labelledby="overview-h">
      <h1 id="overview-h">Overview</h1>
      <section class="card" aria-labelledby="tp-h">
        <h2 id="tp-h">Pipeline throughput, last hour</h2>
        <Loading state={throughput}>{(s) => <SeriesChart series={s} title="Pipeline deliveries and latency, last hour" />}</Loading>
      </section>
      <section class="card" aria-labelledby="types-h">
        <h2 id="types-h">Event types seen</h2>
        <Listing state={types} empty="None yet.">
          {(rows) => (
            <Table head={["Event type", "Tenant", num("Attempts"), "Last seen"]}>
              {rows.slice(0, 20).map((x) => (
                <tr key={`${x.tenant}/${x.event_type}`}>
                  <td>
                    <a class="mono" href={href("events", { event_type: x.event_type })}>
                      {x.event_type}
                    </a>
                  </td>
                  <td class="small">{x.tenant || "—"}</td>
                  <td class="num">{x.attempts}</td>
                  <td class="small">{ago(x.last_seen)}</td>
                </tr>
              ))}
            </Table>
          )}
        </Listing>
      </section>
    </section>
  );
}
