// The link form of a webhook against a real node process and a real HTTPS hook: the signed POST names
// the envelope's link instead of carrying it, and the app fetches the sealed envelope from the node's
// HTTPS listener with the mailbox's own token. Then the link's attackers: no token, a wrong one, another
// mailbox's, an unknown mailbox, a seq never stored, paths that climb or smuggle a slash, other methods,
// a body announced and never sent, a header past the server's limit. Each gets its status, no answer
// but the right token's holds the envelope, and the node goes on serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type RequestOptions } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http';
import { NodeLab, type LabNode } from './lab.ts';
import { Hook, hookRows, idOf, makeHookedNode, openPosted } from './webhook-lab.ts';
import { runCli, until } from '../helpers.ts';
import { readProfile } from '../../gateway/client/index.ts';
import type { WebhookPayload } from '../../gateway/webhooks/index.ts';

interface Answer { status: number; headers: IncomingHttpHeaders; body: Buffer }

describe('webhooks: the link form', () => {
  const lab = new NodeLab();
  const hook = new Hook();
  let a: LabNode;
  const bob = { address: 'bob@a.test', mailbox: 'bob' };
  const tokenOf = (name: string) => readProfile(lab.profile(name)).token;
  const nodeCa = () => readProfile(lab.profile('bob')).node.ca;
  const httpsAddress = () => {
    const [host, port] = a.proc!.ready.http!.split(':');
    return { host: host!, port: Number(port) };
  };

  /** One request to the node's HTTPS listener, as an app reaches it at its public name (a.test, mapped here to the listener). */
  const fetchNode = (path: string, opts: { method?: string; authorization?: string; body?: string } = {}): Promise<Answer> => {
    const options: RequestOptions = {
      ...httpsAddress(), servername: 'a.test', ca: nodeCa(), path, method: opts.method ?? 'GET', agent: false,
      headers: { host: 'a.test', ...(opts.authorization !== undefined ? { authorization: opts.authorization } : {}) },
    };
    return new Promise((resolve, reject) => {
      const req = request(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(opts.body);
    });
  };
  /** Writes `head` (a request's head, as given) on a TLS connection and reads what comes back until the node closes it. */
  const raw = (head: string): Promise<string> => new Promise((resolve, reject) => {
    const socket = tlsConnect({ ...httpsAddress(), servername: 'a.test', ca: nodeCa() }, () => socket.write(head));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
  const bearer = (name: string) => `Bearer ${tokenOf(name)}`;
  const linkPath = (url: string) => new URL(url).pathname;

  const setHook = async (payload?: string) => {
    const set = await lab.cli(['webhooks', 'set', 'bob@a.test', '--url', 'https://hooks.test/in', ...(payload ? ['--payload', payload] : []), '--data', a.data]);
    hook.secret = set.secret;
    return set;
  };
  /** Sends one message to bob and waits until the hook took its POST and the node recorded the 2xx. */
  const sendTaken = async (subject: string, seq: number): Promise<{ messageId: string; payload: WebhookPayload }> => {
    const messageId = await lab.send('alice', a, bob, subject);
    const payload = await until('taken', async () => hook.taken.get(idOf(messageId, seq)));
    await until('settled', async () => (hookRows(a).find((r) => r.seq === seq)?.state === 'delivered' ? true : undefined));
    return { messageId, payload };
  };

  beforeAll(async () => {
    a = await makeHookedNode(lab, hook, 'a', 'a.test');
    await lab.addMailbox('alice@a.test', a, 'alice');
    await lab.addMailbox('bob@a.test', a, 'bob');
    await lab.start(a);
  }, 120_000);

  afterAll(async () => {
    await lab.close();
    await hook.close();
  });

  it('webhooks set takes --payload inline|link (anything else is a usage error; link needs the HTTPS listener); list shows the form; set again without it keeps it', async () => {
    const bogus = await runCli(['webhooks', 'set', 'bob@a.test', '--url', 'https://hooks.test/in', '--payload', 'bogus', '--data', a.data]);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toMatch(/--payload is inline or link/);
    // A link names the node's HTTPS listener: with it off, no app could follow one.
    const noHttps = await runCli(['webhooks', 'set', 'bob@a.test', '--url', 'https://hooks.test/in', '--payload', 'link', '--data', a.data], { env: { AFTERSMTP_HTTP__ENABLED: 'false' } });
    expect(noHttps.code).toBe(2);
    expect(noHttps.stderr).toMatch(/HTTPS listener, which is off \(http\.enabled\)/);
    expect(await lab.cli(['webhooks', 'list', '--data', a.data])).toEqual([]); // nothing was set

    expect(await setHook()).toMatchObject({ payload: 'inline' }); // a new hook's default
    expect(await setHook('link')).toMatchObject({ payload: 'link' });
    expect(await setHook()).toMatchObject({ payload: 'link' }); // kept
    expect(await lab.cli(['webhooks', 'list', '--data', a.data])).toMatchObject([{ mailbox: 'bob@a.test', url: 'https://hooks.test/in', payload: 'link' }]);
    const human = await runCli(['webhooks', 'list', '--data', a.data]);
    expect(human.stdout).toMatch(/bob@a\.test -> https:\/\/hooks\.test\/in \(link\)/);
  });

  it('posts the envelope\'s link, signed; the mailbox\'s token fetches the sealed envelope, which the app opens, also after the hook\'s 2xx acknowledged it', async () => {
    const { messageId, payload } = await sendTaken('by link', 1);
    expect(hook.badSignatures).toEqual([]); // the hook verified it with standardwebhooks' own Webhook.verify
    const { data } = payload;
    expect(data).not.toHaveProperty('envelope');
    if (!('envelopeUrl' in data)) throw new Error('a link hook got no link');
    expect(data.envelopeUrl).toBe('https://a.test/aftersmtp/mailboxes/bob%40a.test/deliveries/1');
    expect(data).toMatchObject({ mailbox: 'bob@a.test', seq: 1, messageId, recipients: ['bob@a.test'], authenticatedSender: 'alice@a.test', senderDomain: 'a.test' });
    expect(data.receipt).toMatchObject({ leafIndex: expect.any(Number), logOrigin: expect.any(String) });

    // The hook's 2xx acknowledged the delivery (above): the link still answers until the delivery is pruned.
    const got = await fetchNode(linkPath(data.envelopeUrl), { authorization: bearer('bob') });
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('application/octet-stream');
    expect(got.headers['cache-control']).toMatch(/no-store/);
    expect(got.body.length).toBe(data.size);
    expect(await openPosted(lab, 'bob', data, got.body)).toMatchObject({ verified: true, subject: 'by link', from: 'alice@a.test', messageId });

    const head = await fetchNode(linkPath(data.envelopeUrl), { method: 'HEAD', authorization: bearer('bob') });
    expect(head).toMatchObject({ status: 200, body: Buffer.alloc(0) });
    expect(head.headers['content-length']).toBe(String(data.size));
  });

  it('refuses whoever is not the mailbox alike, and malformed paths and other methods each with their status; nothing leaks and the node keeps serving', async () => {
    const path = '/aftersmtp/mailboxes/bob%40a.test/deliveries/1';
    const envelope = (await fetchNode(path, { authorization: bearer('bob') })).body;
    const answers: Record<string, Answer> = {};
    const ask = async (name: string, p: string, opts: Parameters<typeof fetchNode>[1] = {}) => { answers[name] = await fetchNode(p, opts); return answers[name]; };

    // No oracle: a missing token, a wrong one, another mailbox's, and a mailbox that does not exist get the same 401.
    const unauthorized = [
      await ask('no authorization', path),
      await ask('not a bearer', path, { authorization: `Basic ${Buffer.from('bob:x').toString('base64')}` }),
      await ask('a garbage token', path, { authorization: 'Bearer asmtp_not-a-token' }),
      await ask('alice\'s token on bob\'s link', path, { authorization: bearer('alice') }),
      await ask('bob\'s token on an unknown mailbox', '/aftersmtp/mailboxes/nobody%40a.test/deliveries/1', { authorization: bearer('bob') }),
      await ask('alice\'s token on an unknown mailbox', '/aftersmtp/mailboxes/nobody%40a.test/deliveries/1', { authorization: bearer('alice') }),
      await ask('an encoded slash in a local part', '/aftersmtp/mailboxes/x%2Fbob%40a.test/deliveries/1', { authorization: bearer('bob') }),
      await ask('a long garbage token', path, { authorization: `Bearer ${'x'.repeat(8000)}` }),
    ];
    for (const a401 of unauthorized) {
      expect(a401.status).toBe(401);
      expect(a401.headers['www-authenticate']).toBe('Bearer');
      expect(a401.body.toString()).toBe(unauthorized[0]!.body.toString());
    }

    // A seq the mailbox does not hold: 404, for its own token only.
    expect((await ask('a seq never stored', '/aftersmtp/mailboxes/bob%40a.test/deliveries/999', { authorization: bearer('bob') })).status).toBe(404);
    expect((await ask('a seq never stored, another token', '/aftersmtp/mailboxes/bob%40a.test/deliveries/999', { authorization: bearer('alice') })).status).toBe(401);

    // Paths that name no delivery: 400, whatever the token.
    for (const bad of [
      '/aftersmtp/mailboxes/../deliveries/1',
      '/aftersmtp/mailboxes/bob%40a.test/deliveries/../deliveries/1',
      '/aftersmtp/mailboxes/..%2F..%2Fnode.db/deliveries/1',
      '/aftersmtp/mailboxes/bob%40a.test%2F..%2Fx/deliveries/1',
      '/aftersmtp/mailboxes/bob%2540a.test/deliveries/1',
      '/aftersmtp/mailboxes/bob%ZZa.test/deliveries/1',
      '/aftersmtp/mailboxes/bob%40a.test/deliveries/0',
      '/aftersmtp/mailboxes/bob%40a.test/deliveries/01',
      '/aftersmtp/mailboxes/bob%40a.test/deliveries/-1',
      '/aftersmtp/mailboxes/bob%40a.test/deliveries/1e3',
      '/aftersmtp/mailboxes/bob%40a.test/deliveries/99999999999999999',
      '/aftersmtp/mailboxes/bob%40a.test/deliveries/1/',
      '/aftersmtp/mailboxes/bob%40a.test',
      '/aftersmtp/mailboxes/',
    ]) expect((await ask(`path ${bad}`, bad, { authorization: bearer('bob') })).status, bad).toBe(400);

    // Other methods: 405, the body not read.
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const answer = await ask(method, path, { method, authorization: bearer('bob'), body: 'x'.repeat(1000) });
      expect(answer.status, method).toBe(405);
      expect(answer.headers.allow).toBe('GET, HEAD');
    }
    // A POST announcing a gigabyte and sending none of it is answered at once, and its connection closed.
    const announced = await raw(`POST ${path} HTTP/1.1\r\nhost: a.test\r\nauthorization: ${bearer('bob')}\r\ncontent-length: 1000000000\r\n\r\n`);
    expect(announced).toMatch(/^HTTP\/1\.1 405 /);
    expect(announced).toMatch(/^connection: close\r$/im); // the node ends the connection rather than wait for (or read) the body
    // A header past the server's limit is refused before any handler runs.
    const huge = await raw(`GET ${path} HTTP/1.1\r\nhost: a.test\r\nauthorization: Bearer ${'x'.repeat(64 * 1024)}\r\n\r\n`);
    expect(huge === '' || /^HTTP\/1\.1 431 /.test(huge), huge.slice(0, 100)).toBe(true);

    // Nothing but bob's own GET carried the envelope (nor any run of its bytes).
    const needle = envelope.subarray(envelope.length - 64);
    for (const [name, answer] of Object.entries(answers)) {
      expect(answer.body.length, name).toBeLessThan(200);
      expect(answer.body.includes(needle), name).toBe(false);
    }
    expect(announced.length).toBeLessThan(1000);

    // The node keeps serving: a new message's link is fetched, and the public resources are still there.
    const { payload } = await sendTaken('after the attacks', 2);
    if (!('envelopeUrl' in payload.data)) throw new Error('a link hook got no link');
    const after = await fetchNode(linkPath(payload.data.envelopeUrl), { authorization: bearer('bob') });
    expect(after.status).toBe(200);
    expect(await openPosted(lab, 'bob', payload.data, after.body)).toMatchObject({ verified: true, subject: 'after the attacks' });
    expect((await fetchNode('/aftersmtp/log/checkpoint')).status).toBe(200);
    expect(hook.badSignatures).toEqual([]);
  });

  it('a hook set back to inline gets the envelope in the POST again', async () => {
    expect(await setHook('inline')).toMatchObject({ payload: 'inline' });
    const { payload } = await sendTaken('inline again', 3);
    expect(payload.data).not.toHaveProperty('envelopeUrl');
    if (!('envelope' in payload.data)) throw new Error('an inline hook got no envelope');
    expect(await openPosted(lab, 'bob', payload.data, Buffer.from(payload.data.envelope, 'base64'))).toMatchObject({ verified: true, subject: 'inline again' });
    expect(await lab.cli(['webhooks', 'list', '--data', a.data])).toMatchObject([{ payload: 'inline', delivered: 3 }]);
  });
});
