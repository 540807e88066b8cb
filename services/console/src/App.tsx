import { useEffect, useMemo, useState } from "preact/hooks";
import { makeClient, unwrap, type Me } from "./api/client";
import { ApiError, MissingRoute, onUnauthorized } from "./api/pending";
import { signIn, signOut, token, type Mode } from "./api/session";
import { Ctx, permissionsOf, useApp, type AppContext } from "./context";
import { Notice } from "./components/ui";
import { href, useRoute } from "./router";
import { Overview } from "./screens/Overview";
import { EndpointList } from "./screens/EndpointList";
import { EndpointDetail } from "./screens/EndpointDetail";
import { EndpointForm } from "./screens/EndpointForm";
import { EventLog } from "./screens/EventLog";
import { EventDetail } from "./screens/EventDetail";
import { DeadLetters } from "./screens/DeadLetters";
import { ReplayDetail, ReplayList } from "./screens/Replays";
import { PortalSessions } from "./screens/PortalSessions";

type Auth = { state: "signed-out"; reason?: string } | { state: "checking" } | { state: "in"; me: Me | null };

export function App({ mode }: { mode: Mode }) {
  const [auth, setAuth] = useState<Auth>(() => (token(mode) ? { state: "checking" } : { state: "signed-out" }));
  const client = useMemo(() => {
    const expired = () => {
      signOut(mode);
      setAuth({ state: "signed-out", reason: refusal(mode) });
    };
    onUnauthorized(expired);
    return makeClient(mode);
  }, [mode]);

  useEffect(() => {
    if (auth.state !== "checking") return;
    whoAmI(client).then(
      (me) => setAuth({ state: "in", me }),
      (e: unknown) => {
        signOut(mode);
        const detail = e instanceof Error ? e.message : String(e);
        setAuth({ state: "signed-out", reason: e instanceof ApiError && e.status === 401 ? `${refusal(mode)} (${detail})` : detail });
      },
    );
  }, [auth.state, mode, client]);

  if (auth.state === "checking") return <p class="center muted">Checking the credential…</p>;
  if (auth.state === "signed-out") {
    return mode === "portal" ? (
      <main class="center narrow">
        <h1>Webhook portal</h1>
        <Notice kind="info">{auth.reason ?? "Open this portal from the link your provider gave you."}</Notice>
      </main>
    ) : (
      <Login
        reason={auth.reason}
        onToken={(t) => {
          signIn(mode, t);
          setAuth({ state: "checking" });
        }}
      />
    );
  }
  const ctx: AppContext = { mode, client, me: auth.me, can: permissionsOf(mode, auth.me) };
  return (
    <Ctx.Provider value={ctx}>
      <Shell
        onSignOut={() => {
          signOut(mode);
          setAuth({ state: "signed-out", reason: "Signed out." });
        }}
      />
    </Ctx.Provider>
  );
}

function refusal(mode: Mode): string {
  return mode === "portal" ? "This portal session has expired or is not valid." : "The token was not accepted (401).";
}

/** Who the credential belongs to; a server without GET /v1/me is asked for one endpoint instead. */
async function whoAmI(client: ReturnType<typeof makeClient>): Promise<Me | null> {
  try {
    return await unwrap(client.GET("/v1/me"), "GET /v1/me");
  } catch (e) {
    if (!(e instanceof MissingRoute)) throw e;
  }
  const { response } = await client.GET("/v1/endpoints", { params: { query: { limit: 1 } } });
  if (response.status === 401) throw new Error("The token was not accepted (401).");
  if (!response.ok) throw new Error(`The API answered ${response.status}.`);
  return null;
}

function Login({ onToken, reason }: { onToken: (t: string) => void; reason?: string }) {
  const [value, setValue] = useState("");
  return (
    <main class="center narrow">
      <h1>Hookline console</h1>
      {reason && <Notice kind="info">{reason}</Notice>}
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) onToken(value.trim());
        }}
      >
        <label class="field">
          <span class="field-label">API token</span>
          <input type="password" name="token" autoComplete="off" required value={value} onInput={(e) => setValue(e.currentTarget.value)} />
          <span class="field-hint">An admin or read token (hookline api token). Kept in this tab only, until you sign out or close it.</span>
        </label>
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </main>
  );
}

const NAV: { path: string; label: string; portal: boolean; console: boolean }[] = [
  { path: "", label: "Overview", portal: false, console: true },
  { path: "endpoints", label: "Endpoints", portal: true, console: true },
  { path: "events", label: "Event log", portal: true, console: true },
  { path: "dlq", label: "Dead letters", portal: true, console: true },
  { path: "replays", label: "Replays", portal: true, console: true },
  { path: "portal-sessions", label: "Portal links", portal: false, console: true },
];

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const { mode, me, can } = useApp();
  const route = useRoute();
  const [section = mode === "portal" ? "endpoints" : "", id, sub] = route.path;
  const nav = NAV.filter((n) => (mode === "portal" ? n.portal && (n.path !== "replays" || can("replay")) : n.console && (n.path !== "portal-sessions" || can("admin"))));
  let screen;
  if (section === "endpoints" && id === "new") screen = <EndpointForm />;
  else if (section === "endpoints" && id && sub === "edit") screen = <EndpointForm id={id} />;
  else if (section === "endpoints" && id) screen = <EndpointDetail id={id} />;
  else if (section === "endpoints") screen = <EndpointList />;
  else if (section === "events" && id) screen = <EventDetail id={id} />;
  else if (section === "events") screen = <EventLog query={route.query} />;
  else if (section === "dlq") screen = <DeadLetters query={route.query} />;
  else if (section === "replays" && id) screen = <ReplayDetail id={id} />;
  else if (section === "replays") screen = <ReplayList />;
  else if (section === "portal-sessions") screen = <PortalSessions />;
  else if (section === "" && mode === "console") screen = <Overview />;
  else screen = <Notice kind="error">No such page.</Notice>;
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">{mode === "portal" ? "Webhooks" : "Hookline"}</span>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.path}>
                <a href={href(n.path)} aria-current={section === n.path ? "page" : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          {me ? (me.kind === "portal" ? `tenant ${me.tenant ?? ""}` : `${me.name} (${me.scopes.join(", ") || me.kind})`) : "signed in"}
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {screen}
      </main>
    </div>
  );
}

