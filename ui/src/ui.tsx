// The UI's building blocks: loading, empty and error states, times, ids, breadcrumbs, icons. Every page uses these.
import { type DependencyList, type ReactNode, useCallback, useEffect, useRef, useState } from "react";
import { Link } from "react-router-dom";
import { ApiError } from "./api";
import { formatRelative, formatTime } from "./format";

/** Data loaded for a page, with its loading and error states and a way to load it again. */
export function useLoad<T>(load: () => Promise<T>, deps: DependencyList): {
  data: T | null; error: string | null; loading: boolean; reload: () => Promise<void>; setData: (d: T) => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const value = await load();
      if (mine === generation.current) { setData(value); setError(null); }
    } catch (failure) {
      if (mine === generation.current) setError(messageOf(failure));
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, deps);  // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => { void reload(); }, [reload]);
  return { data, error, loading, reload, setData };
}

export function messageOf(failure: unknown): string {
  return failure instanceof ApiError ? failure.message : failure instanceof Error ? failure.message : String(failure);
}

export function Loading({ what }: { what: string }) {
  return <div className="state" role="status" aria-live="polite"><span className="spinner" aria-hidden="true" />Loading {what}…</div>;
}

export function Failed({ error, retry }: { error: string; retry?: () => void }) {
  return (
    <div className="state failed" role="alert">
      <Icon name="alert" /> {error} {retry && <button onClick={retry}>Try again</button>}
    </div>
  );
}

/** An empty page says what to do next. */
export function Empty({ title, children, testId }: { title: string; children?: ReactNode; testId?: string }) {
  return (
    <div className="state empty" data-testid={testId ?? "empty"}>
      <h2>{title}</h2>
      {children}
    </div>
  );
}

/** Loading, failed or loaded: the one switch every page goes through. */
export function Loaded<T>({ state, what, children }: {
  state: { data: T | null; error: string | null; reload: () => Promise<void> }; what: string;
  children: (data: T) => ReactNode }) {
  if (state.error) return <Failed error={state.error} retry={() => void state.reload()} />;
  if (state.data === null) return <Loading what={what} />;
  return <>{children(state.data)}</>;
}

/** A time shown relative ("3 minutes ago"), with the absolute UTC time on hover. */
export function Time({ ms }: { ms: number | null | undefined }) {
  if (!ms) return null;
  const absolute = formatTime(ms) + " UTC";
  return <time dateTime={new Date(ms).toISOString()} title={absolute}>{formatRelative(ms)}</time>;
}

/** An id shown short, copied whole. */
export function CopyId({ value, label, short = 8 }: { value: string; label: string; short?: number }) {
  const [copied, setCopied] = useState(false);
  const copy = () => {
    const done = () => { setCopied(true); window.setTimeout(() => setCopied(false), 1500); };
    if (navigator.clipboard) navigator.clipboard.writeText(value).then(done, () => undefined);
  };
  return (
    <span className="copy" data-testid="copy-id">
      <code title={value}>{value.length > short ? value.slice(0, short) : value}</code>
      <button className="icon" aria-label={`copy ${label}`} title={`copy ${label}`} onClick={copy}>
        <Icon name={copied ? "check" : "copy"} />
      </button>
    </span>
  );
}

export function Crumbs({ items }: { items: { label: string; to?: string }[] }) {
  return (
    <nav className="crumbs" aria-label="breadcrumb">
      <ol>{items.map((item, i) => (
        <li key={i}>{item.to && i < items.length - 1 ? <Link to={item.to}>{item.label}</Link>
          : <span aria-current={i === items.length - 1 ? "page" : undefined}>{item.label}</span>}</li>))}
      </ol>
    </nav>
  );
}

export function Status({ status }: { status: string }) {
  return <span className={`badge ${status}`}><Icon name={STATUS_ICON[status] ?? "dot"} />{status.toLowerCase()}</span>;
}

const STATUS_ICON: Record<string, IconName> = { FINISHED: "check", FAILED: "alert", RUNNING: "play", KILLED: "stop",
                                                 approved: "check", rejected: "alert", pending: "clock" };

/** The two lines of SDK code that log a first run: what an empty workspace shows. */
export function FirstRunSnippet({ experiment = "my-experiment" }: { experiment?: string }) {
  return (
    <>
      <p>Log a first run from Python:</p>
      <pre data-testid="first-run-snippet">{`import cairn
with cairn.start_run("${experiment}") as run:
    run.log_metric("loss", 0.25)`}</pre>
    </>
  );
}

type IconName = "copy" | "check" | "alert" | "play" | "stop" | "clock" | "dot" | "external" | "columns" | "chart"
  | "up" | "down" | "link" | "fold" | "unfold" | "cairn";

const PATHS: Record<IconName, string> = {
  copy: "M5 5h7v8H5z M3 3h7v1H4v7H3z",
  check: "M2 8l4 4 8-8-1.4-1.4L6 9.2 3.4 6.6z",
  alert: "M8 1l7 13H1z M7.3 6h1.4v4H7.3z M7.3 11h1.4v1.4H7.3z",
  play: "M4 2l10 6-10 6z",
  stop: "M3 3h10v10H3z",
  clock: "M8 1a7 7 0 1 0 0 14A7 7 0 0 0 8 1zm0 2a5 5 0 1 1 0 10A5 5 0 0 1 8 3zm-.7 1v4.6l3.2 2 .7-1.2-2.5-1.5V4z",
  dot: "M8 5a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
  external: "M9 2h5v5l-2-2-4 4-1-1 4-4zM3 4h4v1H4v7h7V9h1v4H3z",
  columns: "M2 3h12v10H2zm1 1v8h3V4zm4 0v8h2V4zm3 0v8h3V4z",
  chart: "M2 13h12v1H2zM3 10l3-4 3 2 4-5 1 .8-4.6 5.8-3-2L4 11z",
  up: "M8 4l5 6H3z",
  down: "M8 12L3 6h10z",
  link: "M6.5 9.5l3-3 1 1-3 3zM4 12a2 2 0 0 1 0-3l2-2 1 1-2 2a.7.7 0 0 0 1 1l2-2 1 1-2 2a2 2 0 0 1-3 0zm8-8a2 2 0 0 1 0 3l-2 2-1-1 2-2a.7.7 0 0 0-1-1l-2 2-1-1 2-2a2 2 0 0 1 3 0z",
  fold: "M4 6h8l-4 5z",
  unfold: "M6 4v8l5-4z",
  cairn: "M5 12h6l1 2H4zM6 8h4l1 3H5zM7 4h2l1 3H6z",
};

export function Icon({ name }: { name: IconName }) {
  return (
    <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true" focusable="false" style={{ flex: "none" }}>
      <path d={PATHS[name]} fill="currentColor" fillRule="evenodd" />
    </svg>
  );
}
