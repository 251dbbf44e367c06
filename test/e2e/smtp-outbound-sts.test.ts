// MTA-STS in the node: a policy fetched once is kept in the store (sts_policies) and still applies after a
// restart while its policy host is down, and every TLS outcome is counted per day (tls_outcomes) for
// TLS-RPT. The policy of sts.test is `enforce` and does not list the domain's MX: mail to it is deferred,
// never sent. Had the policy been forgotten, the fetch after the restart would fail and the message would
// go out opportunistically: the deferral after the restart is what proves it was kept.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { createServer as createHttps, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { selfSigned, signedBy } from '../bridge/dane-pki.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';
import { OutboundLab } from './outbound-lab.ts';

const POLICY = 'version: STSv1\nmode: enforce\nmx: listed.sts.test\nmax_age: 86400\n';

interface OutcomeRow { day: string; policy_domain: string; policy_type: string; mx_host: string; result: string; count: number }

describe('MTA-STS policies and TLS outcomes kept by the node', () => {
  const lab = new OutboundLab();
  let receiver: Receiver;
  let https: HttpsServer | undefined;
  let fetches = 0;

  beforeAll(async () => {
    const ca = await selfSigned('STS E2E CA', { ca: true });
    const policyCert = await signedBy(ca, 'mta-sts.sts.test');
    https = createHttps({ key: policyCert.keyPem, cert: policyCert.pem + ca.pem }, (req, res) => {
      fetches++;
      if (req.headers.host?.replace(/:\d+$/, '') !== 'mta-sts.sts.test' || req.url !== '/.well-known/mta-sts.txt') { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(POLICY);
    });
    await new Promise<void>((resolve) => https!.listen(0, '127.0.0.1', resolve));
    receiver = await startReceiver({});
    const caFile = join(lab.dir.path, 'sts-ca.pem');
    writeFileSync(caFile, ca.pem);
    await lab.init([
      { name: 'sts.test', signed: false, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1', 'mta-sts IN A 127.0.0.1', '_mta-sts IN TXT "v=STSv1; id=20261207"'] },
      { name: 'ok.test', signed: false, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1'] },
    ], {
      AFTERSMTP_BRIDGE__SMTP__OUTBOUND__PORT_MAP: JSON.stringify({ 'mx.sts.test': receiver.port, 'mx.ok.test': receiver.port }),
      AFTERSMTP_BRIDGE__SMTP__OUTBOUND__STS_HOST_MAP: JSON.stringify({ 'mta-sts.sts.test': `127.0.0.1:${(https.address() as AddressInfo).port}` }),
      AFTERSMTP_BRIDGE__SMTP__OUTBOUND__CA_FILES: JSON.stringify([caFile]),
    });
    await lab.start();
  }, 120_000);

  afterAll(async () => {
    await lab.close();
    await receiver?.close();
    https?.closeAllConnections();
    await new Promise<void>((resolve) => (https?.listening ? https.close(() => resolve()) : resolve()));
  });

  it('an enforce policy survives a restart with its policy host down, refusing the MX it does not list; outcomes are counted per day', async () => {
    // A domain without a policy: opportunistic TLS, delivered (the success row).
    const plain = await lab.send('alice', ['nina@ok.test'], 'no policy here');
    expect(await lab.queueRow(plain.id, 'nina@ok.test', ['delivered', 'failed'])).toMatchObject({ state: 'delivered' });
    const connectionsBefore = receiver.connections;

    const before = await lab.send('alice', ['oscar@sts.test'], 'before restart');
    expect(await lab.queueRow(before.id, 'oscar@sts.test', ['deferred', 'delivered', 'failed'])).toMatchObject({ state: 'deferred', lastError: expect.stringMatching(/MTA-STS/) });
    expect(fetches).toBe(1);

    await lab.stop();
    https!.closeAllConnections();
    await new Promise<void>((resolve) => https!.close(() => resolve()));
    const policies = lab.readStore((db) => db.prepare('SELECT domain, id, policy FROM sts_policies').all() as { domain: string; id: string; policy: string }[]);
    expect(policies).toHaveLength(1);
    expect(policies[0]).toMatchObject({ domain: 'sts.test', id: '20261207' });
    expect(JSON.parse(policies[0]!.policy)).toMatchObject({ mode: 'enforce', mx: ['listed.sts.test'], maxAgeSeconds: 86400 });

    await lab.start();
    const after = await lab.send('alice', ['paul@sts.test'], 'after restart');
    expect(await lab.queueRow(after.id, 'paul@sts.test', ['deferred', 'delivered', 'failed'])).toMatchObject({ state: 'deferred', lastError: expect.stringMatching(/MTA-STS/) });
    expect(fetches).toBe(1); // the id is unchanged: the kept policy applies without a fetch
    expect(receiver.connections).toBe(connectionsBefore); // the unlisted MX was never connected to
    expect(receiver.messages.filter((m) => m.rcpts.some((r) => r.address.endsWith('@sts.test')))).toEqual([]);
    await lab.stop();

    const today = new Date().toISOString().slice(0, 10);
    const rows = lab.readStore((db) => db.prepare('SELECT day, policy_domain, policy_type, mx_host, result, count FROM tls_outcomes ORDER BY result').all() as unknown as OutcomeRow[]);
    expect(rows.map((r) => ({ ...r }))).toEqual([
      { day: today, policy_domain: 'ok.test', policy_type: 'no-policy-found', mx_host: 'mx.ok.test', result: 'success', count: 1 },
      // One row for the day, counted once before the restart and once after.
      { day: today, policy_domain: 'sts.test', policy_type: 'sts', mx_host: 'mx.sts.test', result: 'validation-failure', count: 2 },
    ]);
  }, 60_000);
});
