// Hookline's console (/console/, an API token) and portal (/portal/, a tenant's session):
// one Preact app, a client of the public /v1 API and nothing else.
//
//   api/       the typed client (schema.gen.ts from docs/openapi.json), the credential's
//              storage (session.ts), and the error types of calls (pending.ts)
//   context    who is signed in and what the screens may offer (the API decides anyway)
//   router     hash routes: #/endpoints/ep_…, #/events?status=dead
//   components loading states, lists and their cursor paging, filter forms bound to the URL,
//              the SVG chart, small UI pieces
//   screens/   one file per screen
import { render } from "preact";
import { App } from "./App";
import { adoptFragmentSession, detectMode } from "./api/session";
import "./styles.css";

const mode = detectMode();
if (mode === "portal") adoptFragmentSession(mode);
render(<App mode={mode} />, document.getElementById("app")!);
