// Model answers (whole or still streaming) to sanitised HTML. The model's text is untrusted: an
// image can steer it (text in a screenshot is an instruction to the model), so nothing it writes may
// become script, an event handler, a frame, a form, a network load or a navigation (issue 5).
//
// Two layers. (1) The marked renderer never emits raw HTML from the answer: HTML in the markdown
// is shown as text, links become inert anchors, images become text. (2) DOMPurify, with an allowlist
// of exactly the elements and attributes layer 1 and KaTeX's MathML produce, removes anything that
// slips through. Re-render the whole text on each chunk; marked already renders an unclosed code
// fence as a code block, and an unclosed `$$` shows its TeX as code until the closer arrives.
import DOMPurify, { type Config, type DOMPurify as Purifier } from 'dompurify';
import { Marked, type Tokens } from 'marked';
import { escapeHtml } from './escape';
import { insertMarks, replaceMarks, stripMarks, type Mark } from './marks';
import { mathExtensions } from './math';

/** Protocols a link may keep. Anything else (javascript:, data:, file:, relative) becomes text. */
const LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

/** The URL to keep in `data-href`, or null when the link must not be followable. */
export function safeLinkUrl(href: string | null | undefined): string | null {
  if (!href) return null;
  let url: URL;
  try {
    url = new URL(href.trim());
  } catch {
    return null;
  }
  return LINK_PROTOCOLS.has(url.protocol) ? url.href : null;
}

// Language names are copied into a class; keep them to characters a class name can carry.
function languageOf(info: string | undefined): string {
  return /^[\w+#.-]+/.exec(info ?? '')?.[0] ?? '';
}

const marked = new Marked({
  gfm: true,
  // Models end lines with single newlines and mean them as line breaks.
  breaks: true,
  async: false,
  extensions: mathExtensions,
  renderer: {
    html({ text }: Tokens.HTML | Tokens.Tag) {
      return escapeHtml(text);
    },
    // No href: there is nothing to navigate to. The app opens `data-href` in the system browser
    // when the user clicks (role/tabindex keep it reachable by keyboard).
    link({ href, title, tokens }: Tokens.Link) {
      const inner = this.parser.parseInline(tokens);
      const url = safeLinkUrl(stripMarks(href));
      if (url === null) return `<span class="link-blocked">${inner}</span>`;
      const tip = escapeHtml(title ? `${stripMarks(title)} (${url})` : url);
      return `<a class="external-link" data-href="${escapeHtml(url)}" rel="noopener noreferrer" role="link" tabindex="0" title="${tip}">${inner}</a>`;
    },
    // Loading a remote image would leak that the answer was read, and a data: image is content the
    // user did not attach; show the alt text instead.
    image({ href, text }: Tokens.Image) {
      const alt = text.trim() === '' ? 'image' : text;
      const tip = escapeHtml(`Image not loaded: ${stripMarks(href)}`);
      return `<span class="image-blocked" title="${tip}">[${escapeHtml(alt)}]</span>`;
    },
    code({ text, lang }: Tokens.Code) {
      const language = languageOf(stripMarks(lang ?? ''));
      const cls = language === '' ? '' : ` class="language-${language}"`;
      return (
        `<div class="code-block" data-language="${language}">` +
        `<button type="button" class="code-copy" data-copy-code="" aria-label="Copy code">Copy</button>` +
        `<pre><code${cls}>${escapeHtml(text)}</code></pre></div>\n`
      );
    },
    checkbox({ checked }: Tokens.Checkbox) {
      return `<span class="task-box" data-checked="${checked}">${checked ? '☑' : '☐'}</span> `;
    },
  },
});

const MATHML_TAGS = [
  'math', 'semantics', 'annotation', 'mrow', 'mi', 'mn', 'mo', 'ms', 'mtext', 'mspace', 'msup', 'msub',
  'msubsup', 'mfrac', 'msqrt', 'mroot', 'mover', 'munder', 'munderover', 'mtable', 'mtr', 'mtd',
  'mlabeledtr', 'mstyle', 'mpadded', 'mphantom', 'menclose', 'merror', 'mmultiscripts', 'mprescripts',
];
const MATHML_ATTRS = [
  'xmlns', 'display', 'displaystyle', 'scriptlevel', 'mathvariant', 'mathcolor', 'mathbackground',
  'encoding', 'stretchy', 'fence', 'separator', 'lspace', 'rspace', 'accent', 'accentunder', 'largeop',
  'movablelimits', 'symmetric', 'minsize', 'maxsize', 'width', 'height', 'depth', 'voffset',
  'linethickness', 'notation', 'rowalign', 'columnalign', 'rowspacing', 'columnspacing', 'rowlines',
  'columnlines', 'frame', 'framespacing', 'equalrows', 'equalcolumns', 'side',
  // Not MathML's `form` (KaTeX does not emit it): on a <button> it would bind to an app form by id.
];

export const ALLOWED_TAGS: readonly string[] = [
  'p', 'br', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'strong', 'em', 'del', 's', 'code', 'pre',
  'blockquote', 'ul', 'ol', 'li', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'a', 'span', 'div',
  'button', 'sup', 'sub',
  ...MATHML_TAGS,
];

const CONFIG: Config = {
  ALLOWED_TAGS: [...ALLOWED_TAGS],
  ALLOWED_ATTR: [
    'class', 'title', 'rel', 'role', 'tabindex', 'type', 'aria-label', 'align', 'start',
    'data-href', 'data-language', 'data-copy-code', 'data-checked',
    // marks.ts: timestamp chips and grounding references.
    'data-testid', 'data-seconds', 'data-end-seconds', 'data-grounding', 'data-index',
    ...MATHML_ATTRS,
  ],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
};

let purifier: Purifier | null | undefined;

// Built on first use: the DOM (the webview's, or the test environment's) exists by then.
function getPurifier(): Purifier | null {
  if (purifier !== undefined) return purifier;
  const instance = typeof window === 'undefined' ? null : DOMPurify(window);
  if (instance === null || !instance.isSupported) return (purifier = null);
  // Layer-2 guard for anchors: whatever produced one, it must stay inert and point only where
  // safeLinkUrl allows.
  instance.addHook('afterSanitizeAttributes', (node) => {
    if (node.nodeName.toLowerCase() !== 'a') return;
    const el = node as Element;
    el.removeAttribute('href');
    el.setAttribute('rel', 'noopener noreferrer');
    const url = safeLinkUrl(el.getAttribute('data-href'));
    if (url === null) el.removeAttribute('data-href');
    else el.setAttribute('data-href', url);
  });
  return (purifier = instance);
}

/**
 * Renders markdown to HTML that is safe to assign to `innerHTML`. Never throws. `marks` (spans of
 * `text`, see marks.ts) become timestamp chips and grounding references around the rendered text.
 * Without a DOM to sanitise with, returns the text escaped in a paragraph rather than unsanitised
 * HTML (DOMPurify itself would pass input through unchanged there).
 */
export function renderMarkdown(text: string, marks: readonly Mark[] = []): string {
  const purify = getPurifier();
  if (purify === null) return `<p>${escapeHtml(text)}</p>`;
  let html: string;
  try {
    const { source, kept } = insertMarks(text, marks);
    html = replaceMarks(marked.parse(source, { async: false }), kept);
  } catch {
    html = `<p>${escapeHtml(text)}</p>`;
  }
  return purify.sanitize(html, { ...CONFIG, RETURN_TRUSTED_TYPE: false });
}
