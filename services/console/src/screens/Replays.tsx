import { useState } from "preact/hooks";
import { problemText, unwrap, type Replay } from "../api/client";
import { useApp } from "../context";
import { Listing, Table } from "../components/list";
import { pageOf, useCursor, useInterval, useLoad } from "../components/load";
import { Crumbs, Loading, Notice, StatusBadge } from "../components/ui";
import { time } from "../format";
import { href } from "../router";

const POLL_MS = 2000;
const PAGE = 20;
const live = (r: Replay) => r.state === "pending" || r.state === "running";

/** Replay jobs, newest first, refreshed every 2 s while one is live. GET /v1/replays has no
 * cursor (jobs are few and expire after `replay.keep_finished_ms`), so it is paged here. */
export function ReplayList() {
  const { client } = useApp();
  const cursor = useCursor("");
  const jobs = useLoad(async () => (await unwrap(client.GET("/v1/replays"), "GET /v1/replays")).data, []);
  useInterval(jobs.reload, POLL_MS, !!jobs.data?.some(live));
  const page = { ...jobs, data: jobs.data && pageOf(jobs.data, cursor.after, PAGE) };
  return (
    <section aria-labelledby="replays-h">
      <h1 id="replays-h">Replay jobs</h1>
      <Listing state={page} cursor={cursor} empty="No replay jobs. Start one from the dead letters.">
        {(rows) => (
          <Table head={["Job", "State", "Progress", "Source", "Created"]}>
            {rows.map((r) => (
              <tr key={r.id}>
                <td>
                  <a class="mono small" href={href(`replays/${r.id}`)}>
                    {r.id}
                  </a>
                </td>
                <td>
                  <StatusBadge status={r.state} />
                </td>
                <td class="small">
                  <ProgressBar replay={r} />
                </td>
                <td class="small">
                  {r.source}
                  {r.endpoint_id ? ` · ${r.endpoint_id}` : ""}
                </td>
                <td class="small">{time(r.created_at)}</td>
              </tr>
            ))}
          </Table>
        )}
      </Listing>
    </section>
  );
}

function ProgressBar({ replay: r }: { replay: Replay }) {
  const p = r.progress;
  const total = Math.max(p.total, p.read);
  return (
    <span class="progress">
      <progress max={total || 1} value={total ? p.read : r.state === "completed" ? 1 : 0} aria-label={`Progress of ${r.id}`} />{" "}
      {p.read}/{p.total} read, {p.replayed} replayed
    </span>
  );
}

export function ReplayDetail({ id }: { id: string }) {
  const { client, can } = useApp();
  const [message, setMessage] = useState<{ kind: "ok" | "error"; text: string }>();
  const job = useLoad(() => unwrap(client.GET("/v1/replays/{id}", { params: { path: { id } } }), "GET /v1/replays/{id}"), [id]);
  useInterval(job.reload, POLL_MS, !job.data || live(job.data));
  const cancel = async () => {
    const { data, error, response } = await client.DELETE("/v1/replays/{id}", { params: { path: { id } } });
    setMessage(data ? { kind: "ok", text: "Cancel requested." } : { kind: "error", text: problemText(error, response) });
    job.reload();
  };
  return (
    <section aria-labelledby="replay-h">
      <Crumbs to="replays">Replay jobs</Crumbs>
      <h1 id="replay-h" class="mono">
        {id}
      </h1>
      <Loading state={job}>
        {(r) => (
          <div class="card">
            <p class="title-row">
              <StatusBadge status={r.state} />
              {r.cancel_requested && r.state === "running" && <span class="muted">cancelling…</span>}
              {live(r) && <span class="muted small">refreshing every 2 s</span>}
            </p>
            <ProgressBar replay={r} />
            <dl class="props">
              <dt>Read</dt>
              <dd data-testid="replay-read">
                {r.progress.read} of {r.progress.total}
              </dd>
              <dt>Replayed</dt>
              <dd data-testid="replay-replayed">{r.progress.replayed}</dd>
              <dt>Filtered out</dt>
              <dd>{r.progress.filtered}</dd>
              <dt>Unreplayable</dt>
              <dd>{r.progress.unreplayable}</dd>
              <dt>Source</dt>
              <dd>
                {r.source}
                {r.endpoint_id ? `, endpoint ${r.endpoint_id}` : ", every endpoint"}
              </dd>
              <dt>Range</dt>
              <dd>
                {r.from > 0 ? time(r.from) : "the oldest kept"} – {time(r.to)}
              </dd>
              {r.event_types.length > 0 && (
                <>
                  <dt>Event types</dt>
                  <dd>{r.event_types.join(", ")}</dd>
                </>
              )}
              {r.reasons.length > 0 && (
                <>
                  <dt>Reasons</dt>
                  <dd>{r.reasons.join(", ")}</dd>
                </>
              )}
              <dt>Rate</dt>
              <dd>{r.rate_per_second}/s</dd>
              <dt>Started</dt>
              <dd>{time(r.started_at)}</dd>
              <dt>Finished</dt>
              <dd>{time(r.finished_at)}</dd>
              {r.detail && (
                <>
                  <dt>Detail</dt>
                  <dd>{r.detail}</dd>
                </>
              )}
            </dl>
            {can("replay") && live(r) && !r.cancel_requested && (
              <button type="button" class="danger" onClick={cancel}>
                Cancel job
              </button>
            )}
            {message && <Notice kind={message.kind}>{message.text}</Notice>}
          </div>
        )}
      </Loading>
    </section>
  );
}
