import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { fromLocalInput, toLocalInput } from "../format";
import { go } from "../router";
import { Field } from "./ui";

/** One filter of a list screen: a parameter of the screen's URL (`#/dlq?reason=exhausted`)
 * and its field in the form. */
export interface Filter<N extends string = string> {
  name: N;
  label: string;
  /** Text by default; `time` is a date and time kept as Unix ms; `choice` one of `options`. */
  kind?: "time" | "choice";
  /** A choice's values, or suggestions for a text field. */
  options?: readonly string[];
}

export type FilterValues<N extends string> = Partial<Record<N, string>>;

/** The filters a route's query holds: what the screen lists. */
export function filtersIn<N extends string>(query: URLSearchParams, filters: readonly Filter<N>[]): FilterValues<N> {
  const values: FilterValues<N> = {};
  for (const f of filters) values[f.name] = query.get(f.name) ?? undefined;
  return values;
}

/** A time filter's value as the API takes it. */
export function unixMs(value: string | undefined): number | undefined {
  return value ? Number(value) : undefined;
}

/** The form over a list: it edits a draft of `values`, and `submit` puts the draft in the URL
 * of `path`, which the screen reads back (so a search can be shared). `children` adds actions
 * that follow the draft. */
export function FilterForm<N extends string>({
  path,
  label,
  submit,
  filters,
  values,
  children,
}: {
  path: string;
  label: string;
  submit: string;
  filters: readonly Filter<N>[];
  values: FilterValues<N>;
  children?: (draft: FilterValues<N>) => ComponentChildren;
}) {
  const [draft, setDraft] = useState(values);
  return (
    <form
      class="filters"
      aria-label={label}
      onSubmit={(e) => {
        e.preventDefault();
        go(path, draft);
      }}
    >
      {filters.map((f) => (
        <Field key={f.name} label={f.label}>
          <FilterInput filter={f} value={draft[f.name] ?? ""} onChange={(v) => setDraft((d) => ({ ...d, [f.name]: v || undefined }))} />
        </Field>
      ))}
      <div class="filter-actions">
        <button type="submit" class="primary">
          {submit}
        </button>
        <button
          type="button"
          onClick={() => {
            setDraft({});
            go(path);
          }}
        >
          Clear
        </button>
        {children?.(draft)}
      </div>
    </form>
  );
}

function FilterInput({ filter: f, value, onChange }: { filter: Filter; value: string; onChange: (value: string) => void }) {
  if (f.kind === "choice")
    return (
      <select name={f.name} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        <option value="">any</option>
        {f.options?.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    );
  if (f.kind === "time")
    return <input type="datetime-local" name={f.name} value={toLocalInput(Number(value) || undefined)} onInput={(e) => onChange(String(fromLocalInput(e.currentTarget.value) ?? ""))} />;
  const list = f.options && `${f.name}-options`;
  return (
    <>
      <input type="text" name={f.name} list={list} value={value} onInput={(e) => onChange(e.currentTarget.value)} />
      {f.options && (
        <datalist id={list}>
          {f.options.map((o) => (
            <option key={o} value={o} />
          ))}
        </datalist>
      )}
    </>
  );
}
