// Real AfterSMTP nodes for end-to-end tests: each a separate process created and driven through the
// CLI, with its own data directory under one temporary directory; mailboxes' profiles live beside them.
import { expect } from 'vitest';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { tempDir, receiveMail, runCli, startNodeProcess, type RunningNode } from '../helpers.ts';
import { readProfile, connect, profileResolver, sealFor, submit, type ComposeOptions, type ReceivedMessage } from '../../gateway/client/index.ts';

export interface LabNode { name: string; domain: string; data: string; did: string; proc?: RunningNode; env: NodeJS.ProcessEnv }

/** A running node's Prometheus metrics, from its (loopback) metrics listener. */
export function metricsOf(n: { data: string; proc?: RunningNode }): Promise<string> {
  const [host, port] = n.proc!.ready.metrics!.split(':');
  return new Promise((resolve, reject) => {
    httpRequest({ host, port: Number(port), path: '/metrics' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    }).on('error', reject).end();
  });
}

export interface QueueItem { messageId: string; recipient: string; state: string; lastError: string; attempts: number }

export class NodeLab {
  readonly dir = tempDir();
  readonly nodes = new Map<string, LabNode>();
  /** AFTERSMTP_* settings every node of this lab starts with (a node's own env adds to them). */
  private readonly env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv = {}) {
    this.env = env;
  }

  profile(name: string): string {
    return join(this.dir.path, `${name}.json`);
  }

  /** Runs `aftersmtp ARGS --json`, expects success, returns its parsed output. */
  async cli(args: string[]): Promise<any> {
    const r = await runCli([...args, '--json']);
    expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  }

  async makeNode(name: string, domain: string, opts: { method?: 'key' | 'web'; env?: NodeJS.ProcessEnv } = {}): Promise<LabNode> {
    const data = join(this.dir.path, name);
    const init = await this.cli(['init', '--data', data, '--domain', domain, '--did-method', opts.method ?? 'key', '--grpc-port', '0']);
    const node: LabNode = { name, domain, data, did: init.did, env: { ...this.env, ...opts.env } };
    this.nodes.set(name, node);
    return node;
  }

  async start(node: LabNode): Promise<RunningNode> {
    node.proc = await startNodeProcess(node.data, node.env);
    return node.proc;
  }

  async stop(node: LabNode): Promise<void> {
    node.proc?.child.kill('SIGTERM');
    await node.proc?.exited;
    node.proc = undefined;
  }

  /** A static route at `from` to `to`'s current QUIC and HTTP/2 relay addresses (they change on restart). */
  async route(from: LabNode, to: LabNode): Promise<void> {
    const ready = to.proc!.ready;
    await this.cli(['route', 'add', to.domain, '--did', to.did, '--endpoint', `quic://${ready.quic},relay://${ready.relay}`, '--data', from.data]);
  }

  async addMailbox(address: string, node: LabNode, name: string): Promise<void> {
    await this.cli(['mailbox', 'add', address, '--data', node.data, '--profile', this.profile(name)]);
  }

  /**
   * Two running nodes, `a` for a.test and `b` for b.test, each routed to the other, with mailboxes whose
   * profiles are named by the local part (`alice@a.test` -> profile `alice`).
   */
  async pair(mailboxes: string[]): Promise<[LabNode, LabNode]> {
    const a = await this.makeNode('a', 'a.test');
    const b = await this.makeNode('b', 'b.test');
    await this.start(a);
    await this.start(b);
    await this.route(a, b);
    await this.route(b, a);
    for (const address of mailboxes) await this.addMailbox(address, address.endsWith('@a.test') ? a : b, address.slice(0, address.indexOf('@')));
    return [a, b];
  }

  async queue(node: LabNode): Promise<QueueItem[]> {
    return this.cli(['queue', 'list', '--data', node.data]);
  }

  /** Seals and submits one message from mailbox `from` at its node; returns the message id (hex). */
  async send(from: string, node: LabNode, to: { address: string; mailbox: string }, subject: string): Promise<string> {
    const knownDids = { [to.address]: readProfile(this.profile(to.mailbox)).did };
    return (await this.sendMail(from, node, { to: [to.address], subject, text: subject, knownDids })).messageId;
  }

  /**
   * Seals and submits one message as mailbox `from`'s app does: each address's DID asked of its node
   * (Identity.Resolve) unless `compose.knownDids` names it. Returns the message's id and ledger hash (hex).
   */
  async sendMail(from: string, node: LabNode, compose: ComposeOptions): Promise<{ messageId: string; messageHash: string }> {
    const sender = readProfile(this.profile(from));
    const clients = connect(sender, node.proc!.ready.grpc);
    try {
      const reply = await submit(clients, (await sealFor(sender, clients, profileResolver(sender), compose)).envelope);
      return { messageId: Buffer.from(reply.messageId).toString('hex'), messageHash: Buffer.from(reply.messageHash).toString('hex') };
    } finally {
      clients.close();
    }
  }

  /** Receives (and acknowledges) up to `count` messages of mailbox `name`, waiting at most timeoutMs. */
  async receive(name: string, node: LabNode, count: number, timeoutMs = 20_000): Promise<ReceivedMessage[]> {
    const got = await receiveMail(this.profile(name), node.proc!.ready.grpc, count, timeoutMs);
    return got;
  }

  async close(): Promise<void> {
    for (const node of this.nodes.values()) await this.stop(node);
    this.dir.cleanup();
  }
}
