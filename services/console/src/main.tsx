import { render } from "preact";
import { App } from "./App";
import { adoptFragmentSession, detectMode } from "./api/session";
import "./styles.css";

const mode = detectMode();
if (mode === "portal") adoptFragmentSession(mode);
render(<App mode={mode} />, document.getElementById("app")!);
