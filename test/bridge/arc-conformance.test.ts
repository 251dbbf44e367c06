// The open ARC test suite (ValiMail arc_test_suite, /work/shared/conformance/arc): every chain validation
// case through verifyMessage, every signing case through arcSeal, with the suite's DNS records served
// through the bridge's resolver interface.
import { describe, expect, it } from 'vitest';
import { arcSeal, verifyMessage, type ArcResult } from '../../bridge/index.ts';
import { fieldValue, splitMessage } from '../../bridge/auth/canon.ts';
import { loadSuite, SuiteResolver, type SuiteCase } from './arc-suite.ts';

const validation = loadSuite('arc-validation-tests.yml');
const signing = loadSuite('arc-sign-tests.yml');

/** The suite's `cv`: Pass, Fail or None; empty means fail. */
function expectedCv(c: SuiteCase): ArcResult {
  const cv = String(c.fields.cv ?? '').trim().toLowerCase();
  return cv === '' ? 'fail' : (cv as ArcResult);
}

describe('ARC chain validation (arc-validation-tests.yml)', () => {
  const resolver = new SuiteResolver(validation.txtRecords);
  it('has the 171 cases of the suite', () => {
    expect(validation.cases).toHaveLength(171);
  });
  for (const c of validation.cases) {
    it(c.id, async () => {
      const verdicts = await verifyMessage({
        message: c.message, resolver, ip: '192.0.2.1', helo: 'client.example', mailFrom: 'jqd@d1.example.org', authservId: 'mx.example.net',
      });
      expect(verdicts.arc.result).toBe(expectedCv(c));
    });
  }
});

/**
 * The suite's AR consolidation (SUITE-README.md): the results of every Authentication-Results field of
 * the sealer's authserv-id, in message order, one per line.
 */
function consolidatedResults(message: Buffer, authservId: string): string[] {
  const results: string[] = [];
  for (const field of splitMessage(message).headers.filter((h) => h.name === 'authentication-results')) {
    const [id, ...rest] = fieldValue(field).replace(/\r\n/g, '').split(';').map((part) => part.trim()).filter(Boolean);
    if (id === authservId) results.push(...rest);
  }
  return results;
}

/** A header field value compared tag by tag, whitespace (folding) aside. */
function tags(value: string): string[] {
  return value.replace(/\s+/g, '').split(';').filter(Boolean);
}

describe('ARC sealing (arc-sign-tests.yml)', () => {
  it('has the 17 cases of the suite', () => {
    expect(signing.cases).toHaveLength(17);
  });
  for (const c of signing.cases) {
    it(c.id, () => {
      const authservId = String(c.fields['srv-id']);
      const results = consolidatedResults(c.message, authservId);
      // The suite stamps the chain validation into the newest Authentication-Results (arc=...).
      const chainValidation = (/^arc=(pass|fail|none)\b/.exec(results.find((r) => r.startsWith('arc=')) ?? '')?.[1] ?? 'none') as ArcResult;
      const set = arcSeal({
        message: c.message,
        domain: String(c.document.domain),
        selector: String(c.document.sel),
        privateKey: String(c.document.privatekey),
        authservId,
        authResults: results.join(';\r\n '),
        signHeaders: String(c.fields['sig-headers']).split(':'),
        time: Number(c.fields.t),
        chainValidation,
      });
      const expected = { as: String(c.fields.AS ?? '').trim(), ams: String(c.fields.AMS ?? '').trim(), aar: String(c.fields.AAR ?? '').trim() };
      if (expected.as === '') {
        expect(set).toBeNull();
        return;
      }
      expect(set).not.toBeNull();
      const value = (header: string) => header.slice(header.indexOf(':') + 1);
      expect(tags(value(set!.as))).toEqual(tags(expected.as));
      expect(tags(value(set!.ams))).toEqual(tags(expected.ams));
      expect(tags(value(set!.aar))).toEqual(tags(expected.aar));
    });
  }
});
