import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { MissingRoute } from "../api/pending";

export interface Loaded<T> {
  data?: T;
  error?: string;
  missing?: string;
  loading: boolean;
  reload: () => void;
}

/** Runs `fetcher` when `deps` change; a late answer to an older request is dropped. Data of
 * other arguments (the previous page, other filters) is never returned, not even for the one
 * render before the new request starts; a reload (polling) keeps the data until it lands. */
export function useLoad<T>(fetcher: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const key = JSON.stringify(deps);
  const [state, setState] = useState<{ key?: string; data?: T; error?: string; missing?: string; loading: boolean }>({ loading: true });
  const seq = useRef(0);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    fetcher().then(
      (data) => mine === seq.current && setState({ key, data, loading: false }),
      (e: unknown) => {
        if (mine !== seq.current) return;
        if (e instanceof MissingRoute) setState({ key, missing: e.route, loading: false });
        else setState({ key, error: e instanceof Error ? e.message : String(e), loading: false });
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  if (state.key !== key) return { loading: true, reload };
  return { data: state.data, error: state.error, missing: state.missing, loading: state.loading, reload };
}

/** Repeats `fn` every `ms` while mounted (replay progress, live lists). */
export function useInterval(fn: () => void, ms: number, active = true): void {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!active) return;
    const id = window.setInterval(() => saved.current(), ms);
    return () => window.clearInterval(id);
  }, [ms, active]);
}

/** Where a list stands: the cursor that opened this page, and the moves to the pages beside it. */
export interface Cursor {
  after?: string;
  page: number;
  next: (cursor: string) => void;
  prev: () => void;
}

/** Cursor paging: a stack of the cursors that opened each page, so "Previous" works too. */
export function useCursor(resetKey: string): Cursor {
  const [stack, setStack] = useState<(string | undefined)[]>([undefined]);
  const key = useRef(resetKey);
  if (key.current !== resetKey) {
    key.current = resetKey;
    if (stack.length !== 1) setStack([undefined]);
  }
  return {
    after: stack[stack.length - 1],
    page: stack.length,
    next: (cursor: string) => setStack((s) => [...s, cursor]),
    prev: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
  };
}

/** One page of a list as the API answers it: pass `next` as `after` for the page after. */
export interface Page<T> {
  data: T[];
  next?: string | null;
}

/** The page `after` opens, fetched by `fetchPage`; other `deps` (new filters) start again at
 * the first page. */
export function usePaged<P>(fetchPage: (after: string | undefined) => Promise<P>, deps: unknown[]): [Loaded<P>, Cursor] {
  const cursor = useCursor(JSON.stringify(deps));
  return [useLoad(() => fetchPage(cursor.after), [...deps, cursor.after]), cursor];
}

/** The API's cursor for a list it answers whole (the cursor is an offset), so it pages like the rest. */
export function pageOf<T>(list: T[], after: string | undefined, size: number): Page<T> {
  const start = Number(after ?? 0);
  return { data: list.slice(start, start + size), next: list.length > start + size ? String(start + size) : null };
}
