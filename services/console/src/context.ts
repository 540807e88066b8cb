import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Client, Me } from "./api/client";
import type { Mode } from "./api/session";

/** What the screen may offer. The server checks every call anyway; this only hides buttons. */
export type Action = "manage_endpoints" | "view_secrets" | "rotate_secrets" | "replay" | "admin";

export interface AppContext {
  mode: Mode;
  client: Client;
  /** null: the server does not serve GET /v1/me yet (every action shown, the API decides). */
  me: Me | null;
  can: (action: Action) => boolean;
}

export const Ctx = createContext<AppContext | null>(null);

export function useApp(): AppContext {
  const c = useContext(Ctx);
  if (!c) throw new Error("useApp outside <Ctx.Provider>");
  return c;
}

export function permissionsOf(mode: Mode, me: Me | null): (action: Action) => boolean {
  if (!me) return (action) => mode === "console" || action !== "admin";
  if (me.kind === "portal" || mode === "portal") {
    const granted = new Set(me.permissions ?? []);
    return (action) => action !== "admin" && granted.has(action);
  }
  if (me.kind === "open") return () => true;
  const admin = me.scopes.includes("admin");
  return () => admin;
}
