// Artifact previews that show structure: markdown as headings, lists and code (text only, never raw HTML),
// YAML as a tree of keys, and a logged model's manifest with its signature as tables.
import type { ReactNode } from "react";

export type Block = { kind: "heading"; level: number; text: string } | { kind: "paragraph"; text: string }
  | { kind: "list"; items: string[] } | { kind: "code"; text: string } | { kind: "quote"; text: string };

/** Markdown's block structure (headings, paragraphs, lists, fenced code, quotes); inline marks stay in the text. */
export function markdownBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split(/\r?\n/);
  let paragraph: string[] = [];
  const flush = () => { if (paragraph.length) blocks.push({ kind: "paragraph", text: paragraph.join(" ") }); paragraph = []; };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    const item = /^\s*(?:[-*+]|\d+[.)])\s+(.*)$/.exec(line);
    if (/^\s*(```|~~~)/.test(line)) {
      flush();
      const fence = line.trim().slice(0, 3), body: string[] = [];
      for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence); i += 1) body.push(lines[i]);
      blocks.push({ kind: "code", text: body.join("\n") });
    } else if (heading) { flush(); blocks.push({ kind: "heading", level: heading[1].length, text: heading[2] }); }
    else if (item) {
      flush();
      const last = blocks[blocks.length - 1];
      if (last?.kind === "list") last.items.push(item[1]); else blocks.push({ kind: "list", items: [item[1]] });
    } else if (line.startsWith(">")) { flush(); blocks.push({ kind: "quote", text: line.replace(/^>\s?/, "") }); }
    else if (!line.trim()) flush();
    else paragraph.push(line.trim());
  }
  flush();
  return blocks;
}

/** `code`, **bold** and *emphasis* as elements; everything else stays text, so nothing in the file becomes markup. */
export function inline(text: string): ReactNode[] {
  return text.split(/(`[^`]+`|\*\*[^*]+\*\*|\*[^*\s][^*]*\*)/).filter(Boolean).map((part, i) =>
    part.startsWith("`") ? <code key={i}>{part.slice(1, -1)}</code>
      : part.startsWith("**") ? <strong key={i}>{part.slice(2, -2)}</strong>
      : part.startsWith("*") && part.length > 2 ? <em key={i}>{part.slice(1, -1)}</em> : part);
}

export function Markdown({ text }: { text: string }) {
  return (
    <div className="markdown" data-testid="markdown">
      {markdownBlocks(text).map((b, i) => {
        if (b.kind === "heading") {
          const Tag = `h${Math.min(6, b.level + 2)}` as "h3";
          return <Tag key={i}>{inline(b.text)}</Tag>;
        }
        if (b.kind === "list") return <ul key={i}>{b.items.map((item, j) => <li key={j}>{inline(item)}</li>)}</ul>;
        if (b.kind === "code") return <pre key={i} className="preview">{b.text}</pre>;
        if (b.kind === "quote") return <blockquote key={i}>{inline(b.text)}</blockquote>;
        return <p key={i}>{inline(b.text)}</p>;
      })}
    </div>
  );
}

export interface YamlNode { key: string; value: string; children: YamlNode[] }

/** YAML's nesting by indentation: each `key: value` line (or `- item`) under the less indented line above it. */
export function yamlTree(text: string): YamlNode[] {
  const root: YamlNode = { key: "", value: "", children: [] };
  const stack: { indent: number; node: YamlNode }[] = [{ indent: -1, node: root }];
  for (const raw of text.split(/\r?\n/)) {
    if (!raw.trim() || raw.trim().startsWith("#") || raw.trim() === "---") continue;
    const indent = raw.length - raw.trimStart().length;
    const line = raw.trim();
    const pair = /^(- )?([^:#]+?|"[^"]*"|'[^']*'):(?:\s+(.*))?$/.exec(line);
    const node: YamlNode = pair ? { key: (pair[1] ?? "") + pair[2], value: pair[3] ?? "", children: [] }
      : { key: "", value: line, children: [] };
    while (stack.length > 1 && stack[stack.length - 1].indent >= indent) stack.pop();
    stack[stack.length - 1].node.children.push(node);
    stack.push({ indent, node });
  }
  return root.children;
}

function YamlNodes({ nodes }: { nodes: YamlNode[] }) {
  return (
    <ul className="yaml">{nodes.map((n, i) => (
      <li key={i} data-key={n.key || undefined}>
        {n.key && <span className="yaml-key">{n.key}:</span>} {n.value && <span className="mono">{n.value}</span>}
        {n.children.length > 0 && <YamlNodes nodes={n.children} />}
      </li>))}</ul>
  );
}

export function Yaml({ text }: { text: string }) {
  return <div data-testid="yaml" className="preview">{<YamlNodes nodes={yamlTree(text)} />}</div>;
}

type Schema = { type?: string; columns?: { name?: string; type?: string }[]; dtype?: string; shape?: number[] } | null | undefined;

function SchemaView({ label, schema }: { label: string; schema: Schema }) {
  if (!schema) return <div className="muted">{label}: not recorded</div>;
  if (schema.columns) {
    return (
      <table className="plain" aria-label={`signature ${label}`}>
        <caption className="small muted">{label} ({schema.type})</caption>
        <thead><tr><th>column</th><th>type</th></tr></thead>
        <tbody>{schema.columns.map((c, i) => <tr key={i}><td>{c.name ?? `#${i}`}</td><td><code>{c.type}</code></td></tr>)}</tbody>
      </table>);
  }
  return <div role="group" aria-label={`signature ${label}`}>{label}: {schema.type} <code>{schema.dtype}</code>
    {schema.shape && <> shape <code>({schema.shape.join(", ")})</code></>}</div>;
}

/** A model's signature: input columns (or tensor) and outputs. */
export function Signature({ signature }: { signature: unknown }) {
  const sig = signature as { inputs?: Schema; outputs?: Schema } | null;
  if (!sig) return <span className="muted">none</span>;
  return <div data-testid="signature"><SchemaView label="inputs" schema={sig.inputs} /><SchemaView label="outputs" schema={sig.outputs} /></div>;
}

export interface Manifest { flavor?: string; python?: string; requirements?: string[]; signature?: unknown;
                            files?: Record<string, { size?: number }>; loader?: { kind?: string; class?: string } }

/** A logged model's manifest: flavor, loader, Python, requirements, files and signature. */
export function ManifestView({ manifest }: { manifest: Manifest }) {
  return (
    <table className="plain kv" data-testid="model-manifest"><tbody>
      <tr><th>Flavor</th><td>{manifest.flavor ?? "–"}{manifest.loader?.class && <> · <code>{manifest.loader.class}</code></>}</td></tr>
      <tr><th>Python</th><td>{manifest.python ?? "–"}</td></tr>
      <tr><th>Requirements</th><td>{manifest.requirements?.length ? manifest.requirements.map((r) => <code key={r} className="chip">{r}</code>)
        : <span className="muted">none</span>}</td></tr>
      <tr><th>Files</th><td>{Object.keys(manifest.files ?? {}).map((f) => <code key={f} className="chip">{f}</code>)}</td></tr>
      <tr><th>Signature</th><td><Signature signature={manifest.signature} /></td></tr>
    </tbody></table>
  );
}
