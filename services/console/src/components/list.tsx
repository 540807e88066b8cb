import type { ComponentChildren, JSX } from "preact";
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

/** A table and its column headings: a string heads a plain column, `num(...)` a column of
 * numbers, an element is a heading of its own (a checkbox); `false` leaves a column out. */
export function Table({ caption, head, class: cls = "grid-table", children }: { caption?: string; head: (string | false | JSX.Element)[]; class?: string; children: ComponentChildren }) {
  return (
    <table class={cls}>
      {caption && <caption class="sr-only">{caption}</caption>}
      <thead>
        <tr>{head.map((h) => (typeof h === "string" ? <th scope="col">{h}</th> : h))}</tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}

export function num(label: string): JSX.Element {
  return (
    <th scope="col" class="num">
      {label}
    </th>
  );
}
