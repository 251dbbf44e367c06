// Mail through the node's real SMTP listeners (nodemailer as the client): a node started as `aftersmtp
// start` with the defaults `init` writes listens for SMTP on loopback, says where in its ready line and
// in `aftersmtp status`, and mail to its MX and submission ports reaches the mailbox's app as bridged mail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { NodeLab, type LabNode } from './lab.ts';
import { runCli } from '../helpers.ts';
import { readProfile } from '../../gateway/client/index.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';

describe('mail through the node\'s SMTP listeners', () => {
  let dns: TestDnsServer;
  let lab: NodeLab;
  let node: LabNode;
  let ca: string;
  const ready = () => node.proc!.ready as { smtp?: string; submission?: string };
  const hostPort = (text: string) => ({ host: text.slice(0, text.lastIndexOf(':')), port: Number(text.slice(text.lastIndexOf(':') + 1)) });

  beforeAll(async () => {
    // sender.invalid has no records (SPF, DKIM and DMARC find nothing); sender.test allows the loopback
    // client by SPF and publishes DMARC, so its mail passes DMARC by SPF alignment.
    dns = await startDnsServer([
      { type: 'TXT', name: 'sender.test', data: 'v=spf1 ip4:127.0.0.1 -all' },
      { type: 'TXT', name: '_dmarc.sender.test', data: 'v=DMARC1; p=reject' },
    ]);
    lab = new NodeLab({ AFTERSMTP_DNS__SERVERS: JSON.stringify([dns.address]) });
    node = await lab.makeNode('n', 'example.test');
    await lab.addMailbox('alice@example.test', node, 'alice');
    await lab.addMailbox('bob@example.test', node, 'bob');
    await lab.start(node);
    ca = readFileSync(join(node.data, 'tls', 'ca.crt'), 'utf8');
  }, 60_000);

  afterAll(async () => {
    await lab?.close();
    await dns?.close();
  });

  it('listens for SMTP and submission on loopback with the defaults, and says where in its ready line and status', async () => {
    expect(ready().smtp).toMatch(/^127\.0\.0\.1:[1-9][0-9]*$/);
    expect(ready().submission).toMatch(/^127\.0\.0\.1:[1-9][0-9]*$/);
    const status = await lab.cli(['status', '--data', node.data]);
    expect(status.smtp).toEqual({ smtp: ready().smtp, submission: ready().submission });
  });

  it('takes mail from another MTA on the MX port for bob, who sees it via smtp, not verified without DMARC, with the client\'s HELO', async () => {
    const transport = nodemailer.createTransport({ ...hostPort(ready().smtp!), secure: false, name: 'mta.sender.invalid', tls: { ca, servername: 'localhost' } });
    try {
      const info = await transport.sendMail({
        envelope: { from: 'bounce@sender.invalid', to: ['bob@example.test'] },
        from: 'Carol <carol@sender.invalid>', to: 'bob@example.test', subject: 'over smtp', text: 'Hello from an MTA.',
      });
      expect(info.accepted).toEqual(['bob@example.test']);
    } finally {
      transport.close();
    }
    const [m] = await lab.receive('bob', node, 1);
    expect(m).toMatchObject({ via: 'smtp', from: 'carol@sender.invalid', subject: 'over smtp', verified: false, mailFrom: 'bounce@sender.invalid', clientIp: '127.0.0.1', helo: 'mta.sender.invalid' });
    expect(m!.auth).toMatchObject({ spf: 'none', dkim: 'none', dmarc: 'none' });
    expect(m!.reason).toMatch(/DMARC did not pass for sender\.invalid/);
    expect(dns.queries).toContain('TXT _dmarc.sender.invalid');
  }, 60_000);

  it('refuses MX mail for another domain (no open relay) without looking that domain up', async () => {
    const transport = nodemailer.createTransport({ ...hostPort(ready().smtp!), secure: false, name: 'mta.sender.invalid', tls: { ca, servername: 'localhost' } });
    try {
      await expect(transport.sendMail({
        envelope: { from: 'bounce@sender.invalid', to: ['eve@elsewhere.test'] }, from: 'carol@sender.invalid', to: 'eve@elsewhere.test', subject: 'relay?', text: 'x',
      })).rejects.toMatchObject({ responseCode: 550 });
    } finally {
      transport.close();
    }
    expect(dns.queries.filter((q) => q.includes('elsewhere.test'))).toEqual([]);
  }, 60_000);

  it('shows MX mail whose sender passes DMARC as verified from its From address', async () => {
    const transport = nodemailer.createTransport({ ...hostPort(ready().smtp!), secure: false, name: 'mta.sender.test', tls: { ca, servername: 'localhost' } });
    try {
      await transport.sendMail({
        envelope: { from: 'bounce@sender.test', to: ['bob@example.test'] },
        from: 'Dora <dora@sender.test>', to: 'bob@example.test', subject: 'dmarc pass', text: 'Hello from a sender with DMARC.',
      });
    } finally {
      transport.close();
    }
    const [m] = await lab.receive('bob', node, 1);
    expect(m).toMatchObject({ via: 'smtp', from: 'dora@sender.test', verified: true, mailFrom: 'bounce@sender.test', auth: { spf: 'pass', dmarc: 'pass', dmarcDomain: 'sender.test' } });
  }, 60_000);

  it('takes alice\'s mail on the submission port after AUTH with her token; bob sees it via submission, verified from alice', async () => {
    const alice = readProfile(lab.profile('alice'));
    const transport = nodemailer.createTransport({
      ...hostPort(ready().submission!), secure: false, requireTLS: true, name: 'laptop.example',
      auth: { user: 'alice@example.test', pass: alice.token }, tls: { ca, servername: 'localhost' },
    });
    try {
      await transport.sendMail({ from: 'alice@example.test', to: 'bob@example.test', subject: 'submitted', text: 'Hi Bob.' });
    } finally {
      transport.close();
    }
    const [m] = await lab.receive('bob', node, 1);
    expect(m).toMatchObject({ via: 'submission', from: 'alice@example.test', subject: 'submitted', verified: true });

    const wrong = nodemailer.createTransport({
      ...hostPort(ready().submission!), secure: false, requireTLS: true, auth: { user: 'alice@example.test', pass: 'not-her-token' }, tls: { ca, servername: 'localhost' },
    });
    try {
      await expect(wrong.sendMail({ from: 'alice@example.test', to: 'bob@example.test', subject: 'x', text: 'x' })).rejects.toMatchObject({ responseCode: 535 });
    } finally {
      wrong.close();
    }
  }, 60_000);

  it('drains: a stopped node closes its SMTP listeners', async () => {
    const { smtp } = ready();
    await lab.stop(node);
    const r = await runCli(['status', '--data', node.data]);
    expect(r.code).not.toBe(0);
    const transport = nodemailer.createTransport({ ...hostPort(smtp!), secure: false, connectionTimeout: 2000 });
    try {
      await expect(transport.verify()).rejects.toMatchObject({ code: expect.stringMatching(/ECONNECTION|ESOCKET|ETIMEDOUT/) });
    } finally {
      transport.close();
    }
  }, 60_000);
});
