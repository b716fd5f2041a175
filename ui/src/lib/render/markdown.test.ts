// @vitest-environment jsdom
// jsdom, not the project's default happy-dom: DOMPurify parses with the environment's DOMParser, and
// happy-dom's mis-parses DOMPurify's wrapper (it drops the first element of the output). jsdom
// parses by the HTML standard (parse5), as the webview does, so these results mean something.
import { describe, expect, it } from 'vitest';
import { ALLOWED_TAGS, renderMarkdown, safeLinkUrl } from './markdown';
import { XSS_PAYLOADS } from './xss-payloads';

function fragment(html: string): DocumentFragment {
  const t = document.createElement('template');
  t.innerHTML = html;
  return t.content;
}

const FORBIDDEN_ATTRS = ['form', 'href', 'src', 'srcdoc', 'action', 'formaction', 'style', 'xlink:href', 'data', 'background', 'poster'];

/** Fails unless the HTML can do nothing but display: only allowlisted elements, no handlers, no
 *  URL-carrying attributes, and links only as `data-href` to http(s)/mailto. */
function expectInert(html: string): void {
  for (const el of fragment(html).querySelectorAll('*')) {
    expect(ALLOWED_TAGS).toContain(el.localName);
    for (const attr of el.attributes) {
      expect(attr.name.startsWith('on'), `${el.localName} ${attr.name}`).toBe(false);
      expect(FORBIDDEN_ATTRS).not.toContain(attr.name);
      if (attr.name === 'data-href') expect(attr.value).toMatch(/^(https?|mailto):/);
      else if (attr.name !== 'title') expect(attr.value).not.toMatch(/(javascript|vbscript|data):/i);
    }
  }
  expect(html).not.toMatch(/<(script|iframe|img|svg|form|input|object|embed|style|meta|base|link|video|audio)\b/i);
}

describe('renderMarkdown: hostile input is inert', () => {

  it.each(XSS_PAYLOADS)('%s', (_name, payload) => {
    expectInert(renderMarkdown(payload));
    // Mark edges (timestamp chips, grounding references) at awkward places change nothing.
    const n = payload.length;
    expectInert(
      renderMarkdown(payload, [
        { kind: 'box', span: { start: 0, end: n }, index: 0 },
        { kind: 'timestamp', span: { start: 1, end: n - 1 }, start: 1 },
        { kind: 'point', span: { start: Math.floor(n / 2), end: n - 1 }, index: 0 },
      ]),
    );
  });

  it('shows HTML from the answer as text', () => {
    const html = renderMarkdown('Use <b>bold</b> and <script>alert(1)</script>.');
    expect(fragment(html).textContent).toContain('<b>bold</b>');
    expect(fragment(html).textContent).toContain('<script>alert(1)</script>');
  });

  it('keeps the words of a blocked link and the alt text of an image', () => {
    const f = fragment(renderMarkdown('[click me](javascript:alert(1)) ![a cat](https://e.example/c.png)'));
    expect(f.querySelector('.link-blocked')?.textContent).toBe('click me');
    expect(f.querySelector('.image-blocked')?.textContent).toBe('[a cat]');
  });
});

describe('renderMarkdown: links', () => {
  it.each([
    ['[Qwen](https://qwen.ai/blog)', 'https://qwen.ai/blog', 'Qwen'],
    ['<https://example.com/a?b=1&c=2>', 'https://example.com/a?b=1&c=2', 'https://example.com/a?b=1&c=2'],
    ['see https://example.com/x now', 'https://example.com/x', 'https://example.com/x'],
    ['[mail](mailto:a@example.com)', 'mailto:a@example.com', 'mail'],
  ])('%s becomes an inert anchor', (md, url, text) => {
    const a = fragment(renderMarkdown(md)).querySelector('a');
    expect(a).not.toBeNull();
    expect(a?.getAttribute('data-href')).toBe(url);
    expect(a?.hasAttribute('href')).toBe(false);
    expect(a?.getAttribute('rel')).toBe('noopener noreferrer');
    expect(a?.textContent).toBe(text);
  });

  it.each([
    ['javascript:alert(1)', null],
    [' https://a.example ', 'https://a.example/'],
    ['/relative/path', null],
    ['file:///etc/passwd', null],
    ['data:text/html,x', null],
    ['', null],
  ])('safeLinkUrl(%j)', (href, expected) => {
    expect(safeLinkUrl(href)).toBe(expected);
  });
});

describe('renderMarkdown: blocks', () => {
  it('renders a GFM table with alignment', () => {
    const f = fragment(renderMarkdown('| Object | Box |\n|:--|--:|\n| cake | [135, 114, 855, 979] |\n| cup | [1, 2, 3, 4] |'));
    expect([...f.querySelectorAll('th')].map((th) => [th.textContent, th.getAttribute('align')])).toStrictEqual([
      ['Object', 'left'],
      ['Box', 'right'],
    ]);
    expect([...f.querySelectorAll('tbody tr')].map((tr) => tr.textContent?.trim().replace(/\s+/g, ' '))).toStrictEqual([
      'cake [135, 114, 855, 979]',
      'cup [1, 2, 3, 4]',
    ]);
  });

  it('renders a code block with its language and a copy button, content escaped', () => {
    const f = fragment(renderMarkdown('```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "<cat>"}]\n```'));
    const block = f.querySelector('.code-block');
    expect(block?.getAttribute('data-language')).toBe('json');
    expect(block?.querySelector('button[data-copy-code]')?.getAttribute('type')).toBe('button');
    const code = block?.querySelector('pre > code');
    expect(code?.className).toBe('language-json');
    expect(code?.textContent).toBe('[{"bbox_2d": [1, 2, 3, 4], "label": "<cat>"}]');
  });

  it('keeps only the first word of a fence info string as the language', () => {
    const code = fragment(renderMarkdown('```python title="x"\npass\n```')).querySelector('code');
    expect(code?.className).toBe('language-python');
  });

  it('renders headings, emphasis, lists and line breaks', () => {
    const f = fragment(renderMarkdown('## Found\n\n1. a **red** car\n2. a *blue* bus\n\nline one\nline two'));
    expect(f.querySelector('h2')?.textContent).toBe('Found');
    expect(f.querySelectorAll('ol > li')).toHaveLength(2);
    expect(f.querySelector('strong')?.textContent).toBe('red');
    expect(f.querySelectorAll('p br')).toHaveLength(1);
  });
});

describe('renderMarkdown: math', () => {
  it.each([
    ['$x^2$', false],
    ['\\(x^2\\)', false],
    ['$$x^2$$', true],
    ['\\[x^2\\]', true],
    ['$$\n\\frac{a}{b}\n$$', true],
  ])('%s renders as MathML (display %s)', (md, display) => {
    const math = fragment(renderMarkdown(md)).querySelector('math');
    expect(math).not.toBeNull();
    expect(math?.getAttribute('display') === 'block').toBe(display);
    expect(math?.querySelector('annotation')?.textContent).toMatch(/x\^2|\\frac\{a\}\{b\}/);
  });

  it('leaves prices and code alone', () => {
    const f = fragment(renderMarkdown('It costs $5 and $10. Code: `$x$`.'));
    expect(f.querySelector('math')).toBeNull();
    expect(f.textContent).toContain('$5 and $10');
    expect(f.querySelector('code')?.textContent).toBe('$x$');
  });

  it('does not render math inside a code block', () => {
    const f = fragment(renderMarkdown('```latex\n$$\\frac{a}{b}$$\n```'));
    expect(f.querySelector('math')).toBeNull();
    expect(f.querySelector('code')?.textContent).toBe('$$\\frac{a}{b}$$');
  });

  it('shows a formula error as text, without throwing', () => {
    const html = renderMarkdown('$\\frac{a$ and $$\\def\\x{\\x\\x}\\x$$');
    expectInert(html);
    expect(fragment(html).textContent).toContain('\\frac{a');
  });
});

describe('renderMarkdown: streaming', () => {
  it('renders an unterminated code fence as code so far', () => {
    const code = fragment(renderMarkdown('Here:\n```python\nprint("hi")\nfor i in')).querySelector('pre > code');
    expect(code?.className).toBe('language-python');
    expect(code?.textContent).toBe('print("hi")\nfor i in');
  });

  it('shows an unterminated display formula as its TeX until it closes', () => {
    const open = fragment(renderMarkdown('So:\n$$\n\\frac{a}{b'));
    expect(open.querySelector('math')).toBeNull();
    expect(open.querySelector('.math-pending')?.textContent).toBe('\\frac{a}{b');
    expect(fragment(renderMarkdown('So:\n$$\n\\frac{a}{b}\n$$')).querySelector('math')).not.toBeNull();
  });

  it('renders every prefix of a real answer without throwing and inert', () => {
    const answer =
      'The image shows **two cakes**. Coordinates:\n```json\n[\n\t{"bbox_2d": [135, 114, 855, 979], "label": "cake"}\n]\n```\n| a | b |\n|---|---|\n| 1 | 2 |\n\nArea: $\\frac{w h}{10^6}$ and [source](https://qwen.ai). <img src=x onerror=alert(1)>';
    for (let n = 0; n <= answer.length; n++) expectInert(renderMarkdown(answer.slice(0, n)));
  });
});
