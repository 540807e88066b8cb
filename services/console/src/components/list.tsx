import type { ComponentChildren } from "preact";
import type { Cursor, Loaded, Page } from "./load";
import { Loading } from "./ui";

/** A list screen's body: the loading and error states, then the rows (`children`) and the
 * pager, or `empty` when the first page has none. A later page that comes back empty keeps
 * its pager, so there is a way back. Without a cursor, the list is one page and has no pager. */
export function Listing<T>({
  state,
  cursor,
  empty,
  missing,
  children,
}: {
  state: Loaded<Page<T>>;
  cursor?: Cursor;
  empty: string;
  missing?: (route: string) => ComponentChildren;
  children: (rows: T[]) => ComponentChildren;
}) {
  return (
    <Loading state={state} missing={missing}>
      {(p) =>
        p.data.length === 0 && (cursor?.page ?? 1) === 1 ? (
          <p class="muted">{empty}</p>
        ) : (
          <>
            {children(p.data)}
            {cursor && <Pager cursor={cursor} next={p.next} />}
          </>
        )
      }
    </Loading>
  );
}

function Pager({ cursor, next }: { cursor: Cursor; next?: string | null }) {
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" onClick={cursor.prev} disabled={cursor.page <= 1}>
        ← Previous
      </button>
      <span>Page {cursor.page}</span>
      <button type="button" onClick={() => next && cursor.next(next)} disabled={!next}>
        Next →
      </button>
    </nav>
  );
}
