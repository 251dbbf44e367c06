// README's first two commands: `npm install` then `npm start` on a fresh machine. The start script is
// read from package.json and run with exactly its arguments, from a temporary directory (its data
// directory is relative), so a developer's own ./.data is never touched. The gRPC port comes from
// AFTERSMTP_GRPC__PORT=0 rather than the default 7443, so the test does not need that port free.
import { describe, it, expect, afterAll } from 'vitest';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ROOT, tempDir, runCli, startNodeWith, jsonLines, type RunningNode } from '../helpers.ts';

const startScript: string = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.start;
const [program, ...startArgs] = startScript.split(/\s+/);
const env = { AFTERSMTP_GRPC__PORT: '0' };

describe('`npm start` on a fresh checkout', { timeout: 60_000 }, () => {
  const dir = tempDir();
  const data = join(dir.path, startArgs[startArgs.indexOf('--data') + 1]!);
  const running: RunningNode[] = [];
  const start = async () => {
    const node = await startNodeWith(startArgs, { cwd: dir.path, env });
    running.push(node);
    return node;
  };

  afterAll(async () => {
    for (const node of running) {
      node.child.kill('SIGKILL');
      await node.exited;
    }
    dir.cleanup();
  });

  let firstDid = '';
  it('creates a working node in an empty directory, serves, and stops cleanly on SIGTERM', async () => {
    // What this test runs is what npm runs: the command file, with a data directory and a first-start domain.
    expect(program).toBe('./bin/aftersmtp.js');
    expect(startArgs).toEqual(expect.arrayContaining(['start', '--data', '--init-domain']));
    expect(existsSync(data)).toBe(false);
    const node = await start();
    expect(node.ready.did).toMatch(/^did:key:z6Mk/);
    expect(node.ready.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(node.stderr()).toMatch(/created a new node in .* \(admin token, shown once: asmtp_admin_/);
    firstDid = node.ready.did;

    // What the issue lists: keys, a self-signed TLS certificate, a SQLite store in WAL mode, a config.
    for (const file of ['config.yaml', 'keys/node.json', 'tls/server.crt', 'tls/server.key', 'tls/ca.crt', 'admin.token']) {
      expect(existsSync(join(data, file)), file).toBe(true);
    }
    expect(statSync(data).mode & 0o777).toBe(0o700);
    expect(statSync(join(data, 'keys/node.json')).mode & 0o077).toBe(0);
    const db = new DatabaseSync(join(data, 'node.db'), { readOnly: true });
    try {
      expect((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode).toBe('wal');
    } finally {
      db.close();
    }

    // It serves: the admin Status RPC over TLS answers with the same DID.
    const status = await runCli(['status', '--data', data, '--json'], { env });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).did).toBe(firstDid);

    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
    expect(node.stderr()).toMatch(/"msg":"node stopped"/);
  });

  it('starts the same node again instead of creating another', async () => {
    const node = await start();
    expect(node.ready.did).toBe(firstDid);
    expect(node.stderr()).not.toMatch(/created a new node/);
    const printed = await runCli(['config', 'print', '--data', data, '--json'], { env });
    expect(printed.code, printed.stderr).toBe(0);
    expect(JSON.parse(printed.stdout).node.domains).toEqual([startArgs[startArgs.indexOf('--init-domain') + 1]]);
    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
    // stdout carries the ready line and nothing else (logs go to stderr), so a supervisor can wait for it.
    expect(jsonLines(node.stdout())).toEqual([node.ready]);
    expect(node.stdout().trim().split('\n')).toHaveLength(1);
  });
});
