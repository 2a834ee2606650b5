/** Tags that start a new line of text. */
const BLOCK =
  /<\/?(?:address|article|aside|blockquote|body|dd|div|dl|dt|fieldset|figcaption|figure|footer|form|h[1-6]|header|hr|html|main|nav|ol|p|section|table|tbody|thead|tfoot|tr|ul|caption|progress)\b[^>]*>/gi;
const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };

/**
 * A status page reduced to plain text for a terminal: markup removed, `<br>` and block elements
 * as line breaks (no blank lines), list items as "- " lines, table cells apart, `<pre>` kept as written, the usual
 * entities decoded, runs of spaces collapsed. Text that holds no markup is
 * returned as it is.
 */
export function htmlToText(html: string): string {
  if (!/<[A-Za-z!/]/.test(html)) return html;
  const cleaned = html
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/<![^>]*>|<\?[^>]*>/g, "")
    .replace(/<(script|style|head|template)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, "");
  // <pre> keeps its whitespace; everything else collapses it, as a browser does.
  const parts = cleaned.split(/(<pre\b[^>]*>[\s\S]*?<\/pre\s*>)/i);
  return parts
    .map((part, i) => {
      if (i % 2 === 1) return decodeEntities(stripTags(part.replace(/<br\s*\/?>/gi, "\n")));
      const text = stripTags(
        part
          .replace(/\s+/g, " ")
          .replace(/<br\s*\/?>/gi, "\n")
          .replace(/<li\b[^>]*>/gi, "\n- ")
          .replace(/<\/t[dh]\s*>/gi, "\t")
          .replace(BLOCK, "\n"),
      );
      return decodeEntities(text)
        .split("\n")
        .map((line) => line.replace(/^ +|[ \t]+$/g, ""))
        .filter((line) => line !== "")
        .join("\n");
    })
    .filter((text) => text !== "")
    .join("\n");
}

function stripTags(s: string): string {
  return s.replace(/<\/?[A-Za-z][^>]*>/g, "");
}

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name: string) => {
    if (name[0] === "#") {
      const code =
        name[1] === "x" || name[1] === "X" ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
      return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff)
        ? String.fromCodePoint(code)
        : whole;
    }
    return ENTITIES[name.toLowerCase()] ?? whole;
  });
}
