import type { FullConfig } from "@playwright/test";
import { startStack } from "./stack";

/** Starts the stack once for every test and hands its addresses to the workers by env. */
export default async function globalSetup(_config: FullConfig) {
  const stack = await startStack();
  process.env.CONSOLE_BASE_URL = stack.base;
  process.env.E2E_API = stack.api;
  process.env.E2E_TOKEN = stack.token;
  process.env.E2E_READ_TOKEN = stack.readToken;
  process.env.E2E_SINK_URL = stack.sinkUrl;
  process.env.E2E_FAILING_URL = stack.failingUrl;
  process.env.E2E_STATE = stack.state;
  process.env.E2E_SERVES_CONSOLE = stack.servesConsole ? "1" : "0";
  console.log(`e2e: hookline dev API ${stack.api}, console at ${stack.base}${stack.servesConsole ? "/console/ (served by hookline)" : "/console/ (dist/ served by the test, /v1 proxied: this hookline does not serve /console/ yet)"}; state ${stack.state}`);
  return async () => {
    await stack.stop();
  };
}
