// A strict, small XML reader and the escaping the report writer uses. Reports come from anyone who can send
// mail, so the reader does only what a DMARC aggregate report needs: elements, attributes, text, CDATA,
// comments and processing instructions. A document type declaration is refused outright (no DTD, hence no
// entity can be defined or expanded: the "billion laughs" cannot start); the five predefined entities and
// character references are the only references; depth and element count are bounded; every step is linear in
// the input (indexOf scans and sticky patterns, no backtracking over the document).

export interface XmlElement {
  /** The local name (a namespace prefix dropped). */
  name: string;
  attributes: Map<string, string>;
  children: XmlElement[];
  /** The element's own character data (text and CDATA joined), references resolved. */
  text: string;
}

export class XmlSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XmlSyntaxError';
  }
}

export interface XmlLimits {
  maxDepth: number;
  maxElements: number;
}

const NAME = /[A-Za-z_:][A-Za-z0-9_:.-]*/y;
const SPACE = /[ \t\r\n]*/y;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
/** XML 1.0 §2.2 Char: what a character reference may name. */
function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

function resolveReferences(raw: string, at: number): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&([^;&\s]{0,10});?/g, (whole, ref: string) => {
    if (!whole.endsWith(';')) throw new XmlSyntaxError(`an "&" not starting a reference near offset ${at}`);
    const named = PREDEFINED[ref];
    if (named !== undefined) return named;
    const m = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(ref);
    if (!m) throw new XmlSyntaxError(`the entity "&${ref};" is not one of XML's predefined five (no DTD is read)`);
    const cp = m[1] !== undefined ? parseInt(m[1], 16) : parseInt(m[2]!, 10);
    if (!isXmlChar(cp)) throw new XmlSyntaxError(`"&${ref};" names no XML character`);
    return String.fromCodePoint(cp);
  });
}

function localName(qualified: string): string {
  const colon = qualified.lastIndexOf(':');
  return colon < 0 ? qualified : qualified.slice(colon + 1);
}

/** Parses a whole document to its root element. Throws XmlSyntaxError for anything it does not accept. */
export function parseXml(source: string, limits: XmlLimits): XmlElement {
  let pos = source.charCodeAt(0) === 0xfeff ? 1 : 0;
  let elements = 0;
  const stack: { element: XmlElement; qualified: string; text: string[] }[] = [];
  let root: XmlElement | undefined;

  const fail = (what: string): never => {
    throw new XmlSyntaxError(`${what} at offset ${pos}`);
  };
  const skipSpace = () => {
    SPACE.lastIndex = pos;
    SPACE.exec(source);
    pos = SPACE.lastIndex;
  };
  const readName = (): string => {
    NAME.lastIndex = pos;
    const m = NAME.exec(source);
    if (!m) return fail('a name expected');
    pos = NAME.lastIndex;
    return m[0];
  };
  const skipUntil = (terminator: string, what: string): string => {
    const end = source.indexOf(terminator, pos);
    if (end < 0) fail(`an unterminated ${what}`);
    const content = source.slice(pos, end);
    pos = end + terminator.length;
    return content;
  };

  while (pos < source.length) {
    const lt = source.indexOf('<', pos);
    const textEnd = lt < 0 ? source.length : lt;
    if (textEnd > pos) {
      const text = source.slice(pos, textEnd);
      const open = stack[stack.length - 1];
      if (open) open.text.push(resolveReferences(text, pos));
      else if (/[^ \t\r\n]/.test(text)) fail('text outside the root element');
      pos = textEnd;
      continue;
    }
    if (source.startsWith('<!--', pos)) {
      pos += 4;
      skipUntil('-->', 'comment');
    } else if (source.startsWith('<![CDATA[', pos)) {
      const open = stack[stack.length - 1];
      if (!open) fail('CDATA outside the root element');
      pos += 9;
      open!.text.push(skipUntil(']]>', 'CDATA section'));
    } else if (source.startsWith('<!', pos)) {
      // <!DOCTYPE (and any other declaration): a DTD is where entities are defined; none is read.
      fail('a document type declaration is refused');
    } else if (source.startsWith('<?', pos)) {
      pos += 2;
      skipUntil('?>', 'processing instruction');
    } else if (source.startsWith('</', pos)) {
      pos += 2;
      const qualified = readName();
      skipSpace();
      if (source[pos] !== '>') fail('">" expected');
      pos++;
      const open = stack.pop();
      if (!open || open.qualified !== qualified) fail(`"</${qualified}>" closes no open element of that name`);
      open!.element.text = open!.text.join('');
    } else {
      pos++;
      if (root && stack.length === 0) fail('a second root element');
      const qualified = readName();
      const element: XmlElement = { name: localName(qualified), attributes: new Map(), children: [], text: '' };
      if (++elements > limits.maxElements) fail(`more than ${limits.maxElements} elements`);
      for (;;) {
        const before = pos;
        skipSpace();
        if (source.startsWith('/>', pos) || source[pos] === '>') break;
        if (pos === before) fail('white space expected between attributes');
        const attribute = readName();
        skipSpace();
        if (source[pos] !== '=') fail('"=" expected');
        pos++;
        skipSpace();
        const quote = source[pos];
        if (quote !== '"' && quote !== "'") fail('a quoted attribute value expected');
        pos++;
        const at = pos;
        const value = skipUntil(quote!, 'attribute value');
        if (value.includes('<')) fail('"<" in an attribute value');
        if (element.attributes.has(attribute)) fail(`the attribute "${attribute}" twice`);
        element.attributes.set(attribute, resolveReferences(value, at));
      }
      const parent = stack[stack.length - 1];
      if (parent) parent.element.children.push(element);
      else root = element;
      if (source[pos] === '/') {
        pos += 2;
      } else {
        pos++;
        if (stack.length + 1 > limits.maxDepth) fail(`elements nested deeper than ${limits.maxDepth}`);
        stack.push({ element, qualified, text: [] });
      }
    }
  }
  if (stack.length > 0) throw new XmlSyntaxError(`"<${stack[stack.length - 1]!.qualified}>" is never closed`);
  if (!root) throw new XmlSyntaxError('no root element');
  return root;
}

/**
 * Text for character data or a quoted attribute value: the five markup characters as references, and what
 * XML 1.0 cannot carry at all (C0 controls but TAB, LF and CR; U+FFFE, U+FFFF; lone surrogates) as U+FFFD.
 * CR is written as a reference so that it survives end-of-line normalisation.
 */
export function escapeXml(text: string): string {
  return text
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
    .replace(/[&<>"'\r]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;', '\r': '&#13;' })[ch]!);
}
