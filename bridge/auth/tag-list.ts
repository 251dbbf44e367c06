// The tag=value list of DKIM-Signature, ARC-Seal and ARC-Message-Signature, read exactly as RFC 6376
// §3.2 writes it (RFC 8617 §4.1 uses it for the ARC header fields):
//   tag-list = tag-spec *( ";" tag-spec ) [ ";" ]
//   tag-spec = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//   tag-name = ALPHA *(ALPHA / DIGIT / "_")          (case-sensitive)
//   tag-value = [ tval *( 1*(WSP / FWS) tval ) ],  tval = 1*(%x21-3A / %x3C-7E)
// and "if a tag name does occur more than once, the entire tag-list is invalid". mailauth reads these
// fields leniently (case-folded names, empty specs skipped, the last duplicate kept); a seal whose tag
// list is not valid must not vouch for a chain, so the bridge checks seals with this reader as well.

export type TagListProblem = 'EMPTY_SPEC' | 'BAD_TAG_NAME' | 'MISSING_EQUALS' | 'BAD_TAG_VALUE' | 'DUPLICATE_TAG';

export type TagListResult =
  | { ok: true; tags: Map<string, string> }
  | { ok: false; problem: TagListProblem; detail: string };

const TAG_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
/** tval runs separated by WSP or FWS (CRLF followed by WSP); nothing else. */
const TAG_VALUE = /^(?:[\x21-\x3a\x3c-\x7e]+(?:(?:[ \t]|\r\n[ \t])+[\x21-\x3a\x3c-\x7e]+)*)?$/;
/** [FWS] around names and values: WSP runs, each CRLF followed by at least one WSP. */
const FWS_EDGE = /^(?:[ \t]|\r\n[ \t])*|(?:[ \t]|\r\n[ \t])*$/g;

function trimFws(text: string): string {
  return text.replace(FWS_EDGE, '');
}

/** Parses a header field value (after the colon) as a tag-list; values keep their inner folding. */
export function parseTagList(value: string): TagListResult {
  const tags = new Map<string, string>();
  const specs = value.split(';');
  // One trailing ";" is allowed (it leaves an empty last piece); any other empty piece is a stray ";".
  if (specs.length > 1 && trimFws(specs[specs.length - 1]!) === '') specs.pop();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (trimFws(spec) === '') return { ok: false, problem: 'EMPTY_SPEC', detail: 'empty tag-spec (stray ";")' };
    if (eq < 0) return { ok: false, problem: 'MISSING_EQUALS', detail: `tag-spec "${trimFws(spec)}" has no "="` };
    const name = trimFws(spec.slice(0, eq));
    const tagValue = trimFws(spec.slice(eq + 1));
    if (!TAG_NAME.test(name)) return { ok: false, problem: 'BAD_TAG_NAME', detail: `"${name}" is not a tag name` };
    if (!TAG_VALUE.test(tagValue)) return { ok: false, problem: 'BAD_TAG_VALUE', detail: `the value of ${name}= is not a tag-value` };
    if (tags.has(name)) return { ok: false, problem: 'DUPLICATE_TAG', detail: `${name}= occurs more than once` };
    tags.set(name, tagValue);
  }
  return { ok: true, tags };
}
