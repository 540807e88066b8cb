// Where the credential lives: memory and sessionStorage only, never localStorage or a
// cookie, so it dies with the tab. The portal's token arrives in the URL fragment (never
// sent to a server, never in a Referer) and is moved out of the address bar at once.

export type Mode = "console" | "portal";

const KEY: Record<Mode, string> = { console: "hookline.console.token", portal: "hookline.portal.session" };

export function detectMode(loc: Location = window.location): Mode {
  return /\/portal\/?$/.test(loc.pathname) || loc.pathname.includes("/portal/") ? "portal" : "console";
}

let current: string | null = null;

export function token(mode: Mode): string | null {
  if (current === null) current = sessionStorage.getItem(KEY[mode]);
  return current;
}

export function signIn(mode: Mode, value: string): void {
  current = value;
  sessionStorage.setItem(KEY[mode], value);
}

export function signOut(mode: Mode): void {
  current = null;
  sessionStorage.removeItem(KEY[mode]);
}

/** Takes `#session=<token>` off the URL (portal links) and keeps the token for this tab. */
export function adoptFragmentSession(mode: Mode): void {
  const m = /(?:^#|&)session=([^&]+)/.exec(window.location.hash);
  if (!m || !m[1]) return;
  signIn(mode, decodeURIComponent(m[1]));
  history.replaceState(null, "", window.location.pathname + window.location.search + "#/");
}
