import { describe, expect, it } from "vitest";
import { htmlToText } from "./html-to-text.js";

describe("htmlToText", () => {
  it("returns text without markup as it is", () => {
    expect(htmlToText("step 3 of 10\n  50% done  \n")).toBe("step 3 of 10\n  50% done  \n");
    expect(htmlToText("a < b and c > d")).toBe("a < b and c > d");
  });

  it("reduces a status page to lines: blocks, breaks, list items, cells; head, scripts and styles dropped", () => {
    const html = `<!DOCTYPE html><html><head><title>t</title><style>p{color:red}</style></head>
      <body><h1>Run   42</h1><!-- hidden --><p>step <b>3</b> of 10<br>ETA 5 min</p>
      <ul><li>fetch: done</li><li>align:
      running</li></ul><table><tr><th>n</th><th>state</th></tr><tr><td>1</td><td>ok</td></tr></table>
      <script>alert("x")</script></body></html>`;
    expect(htmlToText(html)).toBe(
      "Run 42\nstep 3 of 10\nETA 5 min\n- fetch: done\n- align: running\nn\tstate\n1\tok",
    );
  });

  it("keeps <pre> as written and decodes entities once", () => {
    expect(htmlToText("<p>x</p><pre>  a\n    b</pre>")).toBe("x\n  a\n    b");
    expect(htmlToText("<p>&lt;b&gt; &amp;amp; &#233;&#x1F642; &nbsp;&quot;&bogus;</p>")).toBe(
      '<b> &amp; é🙂  "&bogus;',
    );
  });
});
