// Reading the node's trace fields of a bridged message: only the topmost Received and the bridge's own
// Authentication-Results count; what the sender put below them proves nothing.
import { describe, expect, it } from 'vitest';
import { bridgedTrace, fromAddress, parseAuthenticationResults } from '../../gateway/client/index.ts';

const AR = 'Authentication-Results: mx.example.test;\r\n dkim=pass header.d=mail.test header.s=rsa;\r\n spf=pass (mx.example.test: domain of b@mail.test designates 192.0.2.10 as permitted sender) smtp.mailfrom=b@mail.test smtp.helo=mta.mail.test;\r\n arc=none smtp.remote-ip=192.0.2.10;\r\n dmarc=pass (p=NONE arc=none) header.from=mail.test';
const RECEIVED = 'Received: from mta.mail.test ([192.0.2.10])\r\n\tby mx.example.test with ESMTPS (TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n\tid abc\r\n\tfor <bob@example.test>;\r\n\tMon, 07 Dec 2026 01:00:01 +0000';
const BODY = 'From: Carol <carol@mail.test>\r\nSubject: hi\r\n\r\nbody\r\n';
const msg = (...fields: string[]) => new Uint8Array(Buffer.from(`${fields.join('\r\n')}\r\n${BODY}`));

describe('the trace of a bridged message', () => {
  it('reads the envelope sender, client, HELO and verdicts from the bridge\'s Authentication-Results above or below its Received', () => {
    const expected = {
      via: 'smtp', authservId: 'mx.example.test', mailFrom: 'b@mail.test', clientIp: '192.0.2.10', helo: 'mta.mail.test',
      auth: { spf: 'pass', dkim: 'pass', dmarc: 'pass', dmarcDomain: 'mail.test', arc: 'none' },
    };
    expect(bridgedTrace(msg(AR, RECEIVED))).toEqual(expected);
    expect(bridgedTrace(msg(RECEIVED, AR))).toEqual(expected);
    expect(bridgedTrace(msg('X-AfterSMTP-Quarantine: dmarc', AR, RECEIVED))).toEqual(expected);
  });

  it('ignores an Authentication-Results of another authserv-id, and one the sender put below the bridge\'s fields', () => {
    const forged = AR;
    const other = AR.replace('mx.example.test;', 'other.example;');
    expect(bridgedTrace(msg(other, RECEIVED))!.auth).toBeUndefined();
    // The bridge's own results say fail; the sender's, further down under the node's name, say pass.
    const fail = AR.replace('dmarc=pass', 'dmarc=fail');
    expect(bridgedTrace(msg(fail, RECEIVED, 'Subject: x', forged))!.auth!.dmarc).toBe('fail');
  });

  it('is submission only when the topmost Received says the session authenticated (RFC 3848)', () => {
    expect(bridgedTrace(msg(RECEIVED.replace('ESMTPS', 'ESMTPSA')))!.via).toBe('submission');
    // A sender's own "ESMTPSA" Received below the bridge's counts for nothing.
    expect(bridgedTrace(msg(AR, RECEIVED, RECEIVED.replace('ESMTPS', 'ESMTPSA')))!.via).toBe('smtp');
  });

  it('is no bridged message when the node\'s Received is not on top (a notice the node wrote itself)', () => {
    expect(bridgedTrace(msg('From: postmaster@example.test', 'Subject: failure'))).toBeUndefined();
    expect(bridgedTrace(msg('Subject: x', RECEIVED))).toBeUndefined();
  });

  it('parses Authentication-Results with comments holding semicolons', () => {
    const r = parseAuthenticationResults('mx.test; spf=fail (not; permitted) smtp.mailfrom=a@b.test; dmarc=fail header.from=b.test');
    expect(r.authservId).toBe('mx.test');
    expect(r.rows.map((x) => [x.method, x.result])).toEqual([['spf', 'fail'], ['dmarc', 'fail']]);
    expect(r.rows[0]!.props.get('smtp.mailfrom')).toBe('a@b.test');
  });

  it('takes the address of a From value', () => {
    expect(fromAddress('Carol <Carol@Mail.Test>')).toBe('carol@mail.test');
    expect(fromAddress('carol@mail.test (Carol)')).toBe('carol@mail.test');
    expect(fromAddress('undisclosed')).toBe('');
  });
});
