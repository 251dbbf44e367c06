// The user journey of issue 2, driven through the real CLI as subprocesses:
// init -> start -> two mailboxes -> send 20 -> subscribe 20 -> every message verified.
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { join } from 'node:path';
import { statSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { DatabaseSync } from 'node:sqlite';
import { tempDir, runCli, startNodeProcess, jsonLines, type RunningNode } from '../helpers.ts';
import { connect, readProfile, unary } from '../../gateway/client/index.ts';
import { until } from '../helpers.ts';

for (const method of ['key', 'web'] as const) {
  describe(`user journey (did:${method})`, { timeout: 120_000 }, () => {
    const dir = tempDir();
    const data = join(dir.path, 'node');
    let node: RunningNode;

    beforeAll(async () => {
      const init = await runCli(['init', '--data', data, '--domain', 'example.test', '--did-method', method, '--grpc-port', '0', '--json']);
      expect(init.code, init.stderr).toBe(0);
      expect(JSON.parse(init.stdout).did).toMatch(method === 'key' ? /^did:key:z6Mk/ : /^did:web:example\.test$/);
      node = await startNodeProcess(data);
    });

    /** The HTTP status of GET `path` on the node's did:web HTTPS server (trusting the node's own CA). */
    const httpsStatus = (path: string) => new Promise<number>((resolve, reject) => {
      const [host, port] = node.ready.http!.split(':');
      httpsRequest({ host, port: Number(port), path, ca: readFileSync(join(data, 'tls/ca.crt')), servername: 'localhost' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject).end();
    });

    afterAll(async () => {
      node?.child.kill('SIGTERM');
      await node?.exited;
      dir.cleanup();
    });

    it('runs, started as `aftersmtp start`, with the young generation capped by its launcher (DECISIONS 17)', () => {
      const argv = readFileSync(`/proc/${node.child.pid}/cmdline`, 'utf8').split('\0');
      expect(argv).toContain('--max-semi-space-size=8');
      expect(argv.some((a) => a.endsWith('bin/aftersmtp.js'))).toBe(true);
    });

    it('refuses to init over an existing node', async () => {
      const again = await runCli(['init', '--data', data, '--domain', 'example.test']);
      expect(again.code).not.toBe(0);
      expect(again.stderr).toMatch(/already holds an AfterSMTP node/);
    });

    it('sends 20 messages from alice and bob receives and verifies all 20', async () => {
      expect(node.ready.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
      const alice = join(dir.path, 'alice.json');
      const bob = join(dir.path, 'bob.json');
      for (const [address, file] of [['alice@example.test', alice], ['bob@example.test', bob]]) {
        const r = await runCli(['mailbox', 'add', address!, '--data', data, '--profile', file!, '--json']);
        expect(r.code, r.stderr).toBe(0);
        expect(statSync(file!).mode & 0o777).toBe(0o600);
      }
      const profile = JSON.parse(readFileSync(alice, 'utf8'));
      expect(profile.signing.privateKey).toBeTruthy();
      const listed = await runCli(['mailbox', 'list', '--data', data, '--json']);
      expect(listed.code, listed.stderr).toBe(0);
      expect(JSON.parse(listed.stdout).map((m: { address: string; did: string }) => [m.address, m.did]))
        .toEqual([['alice@example.test', profile.did], ['bob@example.test', JSON.parse(readFileSync(bob, 'utf8')).did]]);

      const sent: string[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await runCli(['send', '--profile', alice, '--node', node.ready.grpc, '--to', 'bob@example.test', '--subject', `hello ${i}`, '--body', `message number ${i}`, '--json']);
        expect(r.code, r.stderr).toBe(0);
        const out = JSON.parse(r.stdout);
        expect(out.messageId).toMatch(/^[0-9a-f]{32}$/);
        expect(out.messageHash).toMatch(/^[0-9a-f]{64}$/);
        expect(out.deliveredLocal).toEqual(['bob@example.test']);
        sent.push(out.messageId);
      }

      const sub = await runCli(['subscribe', '--profile', bob, '--node', node.ready.grpc, '--count', '20', '--json']);
      expect(sub.code, sub.stderr).toBe(0);
      const lines = jsonLines(sub.stdout);
      expect(lines).toHaveLength(20);
      expect(lines.map((l) => l.messageId).sort()).toEqual([...sent].sort());
      for (const line of lines) {
        expect(line.verified, line.reason).toBe(true);
        expect(line.from).toBe('alice@example.test');
        expect(line.to).toEqual(['bob@example.test']);
        expect(line.subject).toMatch(/^hello \d+$/);
        expect(Number.isNaN(Date.parse(line.receivedAt))).toBe(false);
      }

      // Everything was acknowledged: a new subscription gets nothing (bounded wait via --count 1 would block,
      // so ask the node from cursor 0 with a short-lived subscriber).
      const again = await runCli(['subscribe', '--profile', bob, '--node', node.ready.grpc, '--count', '1', '--json'], { timeoutMs: 3000 }).catch((e: Error) => e);
      expect(again).toBeInstanceOf(Error); // timed out: nothing left to deliver
    });

    it('subscribe --from-cursor resumes after a seq: later messages only, the skipped ones still waiting', async () => {
      const alice = join(dir.path, 'alice.json');
      const bob = join(dir.path, 'bob.json');
      const sent: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await runCli(['send', '--profile', alice, '--node', node.ready.grpc, '--to', 'bob@example.test', '--subject', `cursor ${i}`, '--body', `${i}`, '--json']);
        expect(r.code, r.stderr).toBe(0);
        sent.push(JSON.parse(r.stdout).messageId);
      }
      // Peek at the seqs the node gave them, without acknowledging anything.
      const clients = connect(readProfile(bob), node.ready.grpc);
      const call = clients.mailbox.Subscribe(clients.metadata);
      call.on('error', () => { /* CANCELLED below, on purpose */ });
      const seqOf = new Map<string, number>();
      await new Promise<void>((resolve) => {
        call.on('data', (d: any) => {
          if (!d.seq) return;
          seqOf.set(Buffer.from(d.envelope.messageId).toString('hex'), Number(d.seq));
          if (seqOf.size === 4) resolve();
        });
        call.write({ start: { fromCursor: 0 } });
      });
      call.cancel();
      clients.close();
      expect([...seqOf.keys()]).toEqual(sent);

      const cursor = seqOf.get(sent[1]!)!;
      const resumed = await runCli(['subscribe', '--profile', bob, '--node', node.ready.grpc, '--from-cursor', String(cursor), '--count', '2', '--json']);
      expect(resumed.code, resumed.stderr).toBe(0);
      const after = jsonLines(resumed.stdout);
      expect(after.map((l) => l.messageId)).toEqual(sent.slice(2));
      expect(after.every((l) => l.seq > cursor && l.verified)).toBe(true);
      // The two at or before the cursor were skipped, not acknowledged: a subscription from 0 gets them.
      const rest = await runCli(['subscribe', '--profile', bob, '--node', node.ready.grpc, '--count', '2', '--json']);
      expect(rest.code, rest.stderr).toBe(0);
      expect(jsonLines(rest.stdout).map((l) => l.messageId)).toEqual(sent.slice(0, 2));
    });

    it('send --eml carries a prepared RFC 5322 message byte for byte', async () => {
      const eml = Buffer.from([
        'From: alice@example.test', 'To: bob@example.test', 'Subject: Prepared elsewhere', 'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8', '', 'Grüße aus einer Datei.', 'Line two.', '',
      ].join('\r\n'), 'utf8');
      const file = join(dir.path, 'prepared.eml');
      writeFileSync(file, eml);
      const sent = await runCli(['send', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--to', 'bob@example.test', '--eml', file, '--json']);
      expect(sent.code, sent.stderr).toBe(0);
      const saveDir = join(dir.path, 'saved');
      const sub = await runCli(['subscribe', '--profile', join(dir.path, 'bob.json'), '--node', node.ready.grpc, '--count', '1', '--save-dir', saveDir, '--json']);
      expect(sub.code, sub.stderr).toBe(0);
      const [line] = jsonLines(sub.stdout);
      expect(line).toMatchObject({ messageId: JSON.parse(sent.stdout).messageId, subject: 'Prepared elsewhere', verified: true });
      // The signed message bob keeps holds the file's exact bytes (CRLF and UTF-8 untouched).
      const signed = readFileSync(join(saveDir, readdirSync(saveDir)[0]!));
      expect(signed.indexOf(eml)).toBeGreaterThan(-1);
    });

    it('mailbox token gives bob a new API token: the old one stops working, keys and DID stay', async () => {
      const file = join(dir.path, 'bob.json');
      const before = readProfile(file);
      const whoAmI = async (token: string) => {
        const clients = connect({ ...before, token }, node.ready.grpc);
        try {
          return await unary(clients.mailbox.WhoAmI.bind(clients.mailbox), {}, clients.metadata) as { address: string };
        } finally {
          clients.close();
        }
      };
      expect((await whoAmI(before.token)).address).toBe('bob@example.test');
      const renewed = await runCli(['mailbox', 'token', 'bob@example.test', '--data', data, '--profile', file, '--json']);
      expect(renewed.code, renewed.stderr).toBe(0);
      expect(JSON.parse(renewed.stdout)).not.toHaveProperty('token'); // written to the profile, not printed
      const after = readProfile(file);
      expect(after.token).not.toBe(before.token);
      expect({ ...after, token: '' }).toEqual({ ...before, token: '' });
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect((await whoAmI(after.token)).address).toBe('bob@example.test');
      await until('the old token refused', async () => (await whoAmI(before.token).then(() => undefined, (err: { code: number }) => err.code)), 20_000)
        .then((code) => expect(code).toBe(16)); // UNAUTHENTICATED

      // Without a profile the token is printed once, for an operator to hand over.
      const printed = await runCli(['mailbox', 'token', 'bob@example.test', '--data', data, '--json']);
      expect(printed.code, printed.stderr).toBe(0);
      const { token } = JSON.parse(printed.stdout);
      expect(token).toMatch(/^asmtp_[A-Za-z0-9_-]{43}$/);
      expect((await whoAmI(token)).address).toBe('bob@example.test');
      writeFileSync(file, JSON.stringify({ ...after, token }, null, 2), { mode: 0o600 }); // later tests use the profile
      const unknown = await runCli(['mailbox', 'token', 'nobody@example.test', '--data', data]);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toMatch(/no mailbox nobody@example\.test/);
    });

    it('mailbox remove offboards carol: refused while her mail is unacknowledged, then her mail, token and DID go', async () => {
      const carolFile = join(dir.path, 'carol.json');
      const added = await runCli(['mailbox', 'add', 'carol@example.test', '--data', data, '--profile', carolFile, '--json']);
      expect(added.code, added.stderr).toBe(0);
      const carol = readProfile(carolFile);
      const sendToCarol = (subject: string) => runCli(['send', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--to', 'carol@example.test', '--subject', subject, '--body', subject, '--json']);
      for (const subject of ['one', 'two']) expect((await sendToCarol(subject)).code).toBe(0);
      const didPath = carol.did.startsWith('did:web:') ? `/${carol.did.split(':').slice(3).join('/')}/did.json` : undefined;
      if (didPath) expect(await httpsStatus(didPath)).toBe(200);

      const refused = await runCli(['mailbox', 'remove', 'carol@example.test', '--data', data, '--json']);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/carol@example\.test has 2 message\(s\) its app has not acknowledged; they would be deleted with it \(--force\)/);
      const removing = runCli(['mailbox', 'remove', 'carol@example.test', '--data', data, '--force', '--json']);
      const listed = async () => JSON.parse((await runCli(['mailbox', 'list', '--data', data, '--json'])).stdout).map((m: { address: string }) => m.address) as string[];
      await until('carol\'s record gone', async () => ((await listed()).includes('carol@example.test') ? undefined : true), 20_000);
      // Until the node re-reads carol's record it still takes her mail, and the removal deletes that too.
      // Whether this send lands before or after the node notices depends on the machine's speed: either
      // way, every message the node took for carol is deleted with her.
      const late = await sendToCarol('while the node may not have noticed');
      if (late.code !== 0) expect(late.stderr).toMatch(/carol@example\.test/);
      const removed = await removing;
      expect(removed.code, removed.stderr).toBe(0);
      expect(JSON.parse(removed.stdout)).toEqual({ event: 'mailbox-removed', address: 'carol@example.test', deleted: late.code === 0 ? 3 : 2, unacknowledged: 2 });

      // The running node: mail to carol refused, her token refused, her DID document gone, within seconds.
      await until('mail to carol refused', async () => { const r = await sendToCarol('three'); return r.code !== 0 ? r : undefined; }, 20_000)
        .then((r) => expect(r.stderr).toMatch(/carol@example\.test/));
      const clients = connect(carol, node.ready.grpc);
      try {
        await until('carol\'s token refused', async () => (await unary(clients.mailbox.WhoAmI.bind(clients.mailbox), {}, clients.metadata).then(() => undefined, (err: { code: number }) => err.code)), 20_000)
          .then((code) => expect(code).toBe(16)); // UNAUTHENTICATED
      } finally {
        clients.close();
      }
      if (didPath) expect(await httpsStatus(didPath)).toBe(404);
      expect(await listed()).toContain('bob@example.test');
      const db = new DatabaseSync(join(data, 'node.db'), { readOnly: true });
      try {
        expect(db.prepare('SELECT count(*) AS n FROM deliveries WHERE mailbox = ?').get('carol@example.test')).toEqual({ n: 0 });
      } finally {
        db.close();
      }
      const unknown = await runCli(['mailbox', 'remove', 'carol@example.test', '--data', data]);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toMatch(/no mailbox carol@example\.test/);
    });

    it('prints the merged config with secrets redacted', async () => {
      const r = await runCli(['config', 'print', '--data', data, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const config = JSON.parse(r.stdout);
      expect(config.node.domains).toEqual(['example.test']);
      expect(config.admin.tokenSha256).toBe('[redacted]');
      expect(config.grpc.port).toBe(0);
    });
  });
}
