// SRS rewriting and its reversal, with an injected clock: round trips, the SRS1 chain of two forwarders,
// what MTAs do to local parts (case folding), and addresses an attacker makes up.
import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { Srs, SrsError } from '../../bridge/index.ts';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 11, 7);
let clock = T0;
const now = () => clock;
const secret = Buffer.from('first forwarder secret');
const fwd1 = new Srs({ secret, domain: 'fwd1.example', now });
const fwd2 = new Srs({ secret: Buffer.from('second forwarder secret'), domain: 'fwd2.example', now });

function code(f: () => unknown): string {
  try { f(); } catch (err) { return err instanceof SrsError ? err.code : `not an SrsError: ${String(err)}`; }
  return 'no error';
}

describe('SRS0', () => {
  it('rewrites into the forwarder domain and reverses to the original', () => {
    clock = T0;
    const srs = fwd1.forward('alice.smith+tag=x@Origin.example');
    expect(srs).toMatch(/^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=Origin\.example=alice\.smith\+tag=x@fwd1\.example$/);
    expect(fwd1.reverse(srs)).toBe('alice.smith+tag=x@Origin.example');
  });

  it('leaves the null path and addresses of its own domain alone', () => {
    expect(fwd1.forward('')).toBe('');
    expect(fwd1.forward('bob@FWD1.example')).toBe('bob@FWD1.example');
  });

  it('reverses an address an MTA lower-cased or upper-cased (the local part comes back folded)', () => {
    clock = T0;
    const srs = fwd1.forward('Alice@Origin.example');
    expect(fwd1.reverse(srs.toLowerCase())).toBe('alice@origin.example');
    const [local, domain] = [srs.slice(0, srs.lastIndexOf('@')), srs.slice(srs.lastIndexOf('@') + 1)];
    expect(fwd1.reverse(`${local.toUpperCase()}@${domain}`)).toBe('ALICE@ORIGIN.EXAMPLE');
  });

  it('accepts up to maxAgeDays, then EXPIRED; the day counter wraps at 1024', () => {
    clock = T0;
    const srs = fwd1.forward('alice@origin.example');
    clock = T0 + 21 * DAY;
    expect(fwd1.reverse(srs)).toBe('alice@origin.example');
    clock = T0 + 22 * DAY;
    expect(code(() => fwd1.reverse(srs))).toBe('EXPIRED');
    // Made on day 1023 of a cycle, read on day 3 of the next.
    const dayOfCycle = Math.floor(T0 / DAY) % 1024;
    clock = T0 + (1023 - dayOfCycle) * DAY;
    const late = fwd1.forward('alice@origin.example');
    clock += 4 * DAY;
    expect(fwd1.reverse(late)).toBe('alice@origin.example');
  });

  it('BAD_HASH for a tampered hash, a swapped original, or a forged address; checked before the timestamp', () => {
    clock = T0;
    const srs = fwd1.forward('alice@origin.example');
    const [, hash, rest] = /^SRS0=(.{4})=(.*)$/.exec(srs)!;
    const otherHash = hash === 'AAAA' ? 'BBBB' : 'AAAA';
    expect(code(() => fwd1.reverse(`SRS0=${otherHash}=${rest}`))).toBe('BAD_HASH');
    expect(code(() => fwd1.reverse(srs.replace('=alice@', '=mallory@')))).toBe('BAD_HASH');
    // Moving characters across the domain/local boundary keeps the concatenation but not the hash.
    expect(code(() => fwd1.reverse(srs.replace('origin.example=alice', 'origin.exampl=ealice')))).toBe('BAD_HASH');
    expect(code(() => fwd1.reverse('SRS0=abcd=ZZ=victim.example=ceo@fwd1.example'))).toBe('BAD_HASH');
    expect(code(() => fwd2.reverse(srs))).toBe('BAD_HASH');
    try { fwd1.reverse('SRS0=abcd=ZZ=victim.example=ceo@fwd1.example'); } catch (err) {
      expect((err as Error).message).toMatch(/not made by this forwarder/);
    }
  });

  it('verifies with every secret after a rotation, signs with the first', () => {
    clock = T0;
    const old = fwd1.forward('alice@origin.example');
    const rotated = new Srs({ secret: [Buffer.from('new secret'), secret], domain: 'fwd1.example', now });
    expect(rotated.reverse(old)).toBe('alice@origin.example');
    const fresh = rotated.forward('alice@origin.example');
    expect(fresh).not.toBe(old);
    expect(code(() => fwd1.reverse(fresh))).toBe('BAD_HASH');
  });
});

describe('SRS1', () => {
  it('a second forwarder wraps SRS0 into SRS1; each reverses its own step', () => {
    clock = T0;
    const first = fwd1.forward('alice@origin.example');
    const second = fwd2.forward(first);
    expect(second).toMatch(/^SRS1=[A-Za-z0-9+/]{4}=fwd1\.example==[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=origin\.example=alice@fwd2\.example$/);
    expect(fwd2.reverse(second)).toBe(first);
    expect(fwd1.reverse(fwd2.reverse(second))).toBe('alice@origin.example');
  });

  it('a third forwarder keeps the first forwarder and replaces the hash', () => {
    clock = T0;
    const first = fwd1.forward('alice@origin.example');
    const second = fwd2.forward(first);
    const fwd3 = new Srs({ secret: Buffer.from('third'), domain: 'fwd3.example', now });
    const third = fwd3.forward(second);
    expect(third).toMatch(/^SRS1=.{4}=fwd1\.example==.{4}=..=origin\.example=alice@fwd3\.example$/);
    expect(fwd3.reverse(third)).toBe(first);
    expect(code(() => fwd3.reverse(third.replace('=fwd1.example=', '=evil.example=')))).toBe('BAD_HASH');
  });
});

describe('refusals', () => {
  it('NOT_SRS for an ordinary address, MALFORMED for broken ones', () => {
    expect(code(() => fwd1.reverse('alice@fwd1.example'))).toBe('NOT_SRS');
    expect(code(() => fwd1.reverse('SRS0=abcd@fwd1.example'))).toBe('MALFORMED');
    expect(code(() => fwd1.reverse('SRS1=abcd=host@fwd1.example'))).toBe('MALFORMED');
    expect(code(() => fwd1.reverse('no-at-sign'))).toBe('MALFORMED');
    expect(code(() => fwd1.forward('a b@origin.example'))).toBe('MALFORMED');
    expect(code(() => fwd1.forward('alice@origin.example\r\nRCPT TO:<x@y>'))).toBe('MALFORMED');
    expect(code(() => fwd1.forward('alice@'))).toBe('MALFORMED');
  });

  it('a timestamp that is not base32 is MALFORMED even under a valid hash', () => {
    // The hash covers the stamp, so only someone with the secret can get here: made with it directly.
    const hash = createHmac('sha1', secret).update(['!!', 'origin.example', 'alice'].join('\0')).digest('base64').slice(0, 4);
    expect(code(() => fwd1.reverse(`SRS0=${hash}=!!=origin.example=alice@fwd1.example`))).toBe('MALFORMED');
  });

  it('BAD_CONFIG for no secret, an empty secret, a bad domain, a bad age', () => {
    expect(code(() => new Srs({ secret: [], domain: 'a.example' }))).toBe('BAD_CONFIG');
    expect(code(() => new Srs({ secret: Buffer.alloc(0), domain: 'a.example' }))).toBe('BAD_CONFIG');
    expect(code(() => new Srs({ secret, domain: 'a example' }))).toBe('BAD_CONFIG');
    expect(code(() => new Srs({ secret, domain: 'a.example', maxAgeDays: 1024 }))).toBe('BAD_CONFIG');
  });
});
