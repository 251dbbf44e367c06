// Runs inside a private network and mount namespace (started by posttls-finger.ts through `unshare`) and gives
// Postfix's posttls-finger the two things it cannot be told on its command line: a resolver (libc reads only
// /etc/resolv.conf, port 53) and MX hosts on port 25 (TLSA names say `_25._tcp`, and Postfix looks up the
// port it connects to). Here /etc/resolv.conf is replaced by a private one naming the lab resolver's address,
// and every 127.x.y.z:25 and :53 of this namespace is mirrored, over a Unix socket in the shared file system,
// to the test process, which connects on to the real server. Requests come on stdin, one JSON line each
// ({ id, args }), and each run's exit code and output go back on stdout as one JSON line.
//   node posttls-netns.ts DIR POSTTLS_FINGER
// DIR holds resolv.conf and main.cf, and the mirror sockets DIR/ADDR-PORT.sock; POSTTLS_FINGER is its path.
import { execFileSync, spawn } from 'node:child_process';
import { createServer, connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

const [dir, posttlsFinger] = process.argv.slice(2);
if (!dir || !posttlsFinger) throw new Error('usage: posttls-netns.ts DIR POSTTLS_FINGER');

execFileSync('ip', ['link', 'set', 'lo', 'up']);
execFileSync('mount', ['--bind', join(dir, 'resolv.conf'), '/etc/resolv.conf']);

function mirror(port: number): Promise<void> {
  const server = createServer((client: Socket) => {
    const upstream = connect(join(dir!, `${client.localAddress}-${port}.sock`));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => resolve());
  });
}

await Promise.all([mirror(25), mirror(53)]);
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  const { id, args } = JSON.parse(line) as { id: number; args: string[] };
  const child = spawn(posttlsFinger, args, { env: { ...process.env, MAIL_CONFIG: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  child.on('error', (err) => { output += `${err.message}\n`; });
  child.on('close', (code, signal) => {
    process.stdout.write(`${JSON.stringify({ id, code: code ?? signal, output })}\n`);
  });
}
// The test process is gone (or done): nothing is left to serve, and the mirrors must not keep this one alive.
process.exit(0);
