// TeX in model answers: `$…$`, `$$…$$`, `\(…\)`, `\[…\]`, as marked extensions so that code spans
// and fences keep their dollars. KaTeX renders MathML only: MathML needs neither KaTeX's stylesheet
// and fonts nor inline `style` attributes, so the sanitiser can refuse every `style` and the CSP
// needs no 'unsafe-inline' for math. `trust: false` turns `\href`, `\url`, `\includegraphics` and the
// `\html…` commands into error text, so TeX cannot make links, load images or set attributes.
import katex from 'katex';
import type { TokenizerAndRendererExtension, Tokens } from 'marked';
import { escapeHtml } from './escape';
import { stripMarks } from './marks';

interface MathToken extends Tokens.Generic {
  type: 'blockMath' | 'inlineMath';
  tex: string;
  display: boolean;
  /** The closing delimiter has not arrived (streaming, or an unbalanced answer). */
  pending: boolean;
}

export function renderTex(tex: string, display: boolean): string {
  tex = stripMarks(tex);
  try {
    return katex.renderToString(tex, {
      displayMode: display,
      output: 'mathml',
      throwOnError: false,
      trust: false,
      strict: 'ignore',
      // Bounds on what a hostile formula can cost: macro expansion and sizes.
      maxExpand: 500,
      maxSize: 50,
    });
  } catch {
    // throwOnError=false still throws for non-parse failures such as maxExpand.
    return `<code class="math-error">${escapeHtml(tex)}</code>`;
  }
}

function renderPending(tex: string, display: boolean): string {
  const body = escapeHtml(stripMarks(tex));
  return display ? `<pre class="math-pending"><code>${body}</code></pre>\n` : `<code class="math-pending">${body}</code>`;
}

// The body stops at the first closer, so a failed attempt costs at most the distance to it
// (marked tries block tokenizers at every line).
const BLOCK_CLOSED = [
  /^ {0,3}\$\$((?:(?!\$\$)[\s\S])+)\$\$[ \t]*(?:\n+|$)/,
  /^ {0,3}\\\[((?:(?!\\\])[\s\S])+)\\\][ \t]*(?:\n+|$)/,
];
// An opener with no closer anywhere after it: the rest is formula still streaming.
const BLOCK_OPEN = [/^ {0,3}\$\$((?:(?!\$\$)[\s\S])*)$/, /^ {0,3}\\\[((?:(?!\\\])[\s\S])*)$/];

const INLINE: [RegExp, boolean][] = [
  [/^\$\$((?:\\[\s\S]|[^\\$])+?)\$\$/, true],
  [/^\\\[([\s\S]+?)\\\]/, true],
  [/^\\\(([\s\S]+?)\\\)/, false],
  // Pandoc's rule, so prices stay text: no space inside the dollars, no digit right after the closer
  // (`$5 and $10` is not math). No backtick inside either, so `$10 … \`$x$\`` does not reach into code.
  [/^\$(?![\s$])((?:\\[\s\S]|[^\\$\n`])+?)(?<!\s)\$(?!\d)/, false],
];

const blockMath: TokenizerAndRendererExtension = {
  name: 'blockMath',
  level: 'block',
  start(src) {
    const m = /(?:^|\n) {0,3}(?:\$\$|\\\[)/.exec(src);
    return m ? m.index + (m[0].startsWith('\n') ? 1 : 0) : undefined;
  },
  tokenizer(src): MathToken | undefined {
    for (const [i, re] of BLOCK_CLOSED.entries()) {
      const m = re.exec(src);
      if (m) return { type: 'blockMath', raw: m[0], tex: m[1].trim(), display: true, pending: false };
      const open = BLOCK_OPEN[i].exec(src);
      if (open) return { type: 'blockMath', raw: open[0], tex: open[1].trim(), display: true, pending: true };
    }
    return undefined;
  },
  renderer(token) {
    const t = token as MathToken;
    return t.pending ? renderPending(t.tex, true) : `<div class="math-display">${renderTex(t.tex, true)}</div>\n`;
  },
};

const inlineMath: TokenizerAndRendererExtension = {
  name: 'inlineMath',
  level: 'inline',
  start(src) {
    const i = src.search(/\$|\\\(|\\\[/);
    return i < 0 ? undefined : i;
  },
  tokenizer(src): MathToken | undefined {
    for (const [re, display] of INLINE) {
      const m = re.exec(src);
      if (m) return { type: 'inlineMath', raw: m[0], tex: m[1].trim(), display, pending: false };
    }
    return undefined;
  },
  renderer(token) {
    const t = token as MathToken;
    return renderTex(t.tex, t.display);
  },
};

export const mathExtensions = [blockMath, inlineMath];
