// Parses the Mermaid diagrams of a Markdown file with the real Mermaid parser, for
// sockscript's tests (tests/markdown.rs). For every ```mermaid block it prints one JSON line:
//   {"ok":true,"type":"sequence","actors":[[id,label],...],"messages":[{"from","to","kind","text"}]}
// with Mermaid's entity codes (#59;) decoded as a browser shows them, or
//   {"ok":false,"error":"..."}
// Usage: node parse.mjs FILE.md
import { readFileSync } from 'node:fs';
import mermaid from 'mermaid';

// Mermaid hides `#name;` entity codes behind these markers while parsing; the browser shows
// the character.
const decode = (s) =>
  String(s ?? '').replace(/ﬂ°°(\d+)¶ß/g, (_, n) => String.fromCodePoint(Number(n)));

const text = readFileSync(process.argv[2], 'utf8');
const blocks = [...text.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
for (const block of blocks) {
  try {
    const parsed = await mermaid.parse(block);
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(block);
    const db = diagram.db;
    const kinds = Object.fromEntries(Object.entries(db.LINETYPE).map(([k, v]) => [v, k]));
    const actors = [...db.getActors().values()].map((a) => [a.name, decode(a.description)]);
    const messages = db.getMessages().map((m) => ({
      from: m.from ?? null,
      to: m.to ?? null,
      kind: kinds[m.type] ?? String(m.type),
      text: decode(m.message),
    }));
    console.log(JSON.stringify({ ok: true, type: parsed.diagramType, actors, messages }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e.message ?? e) }));
  }
}
