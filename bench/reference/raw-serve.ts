// The grpc-js server the reference servers of the benches run (raw-server.ts, floor-server.ts, federation-floor-node.ts):
// raw.proto's Raw service over TLS with the node's message limit and HTTP/2 windows, on 127.0.0.1:0. Prints
// the ready line bench/suites/mailbox.ts waits for; SIGTERM stops it, then `onStop` runs.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { widenServerWindows, configSchema } from '../../gateway/core/index.ts';

export function serveRaw(certFile: string, keyFile: string, handlers: grpc.UntypedServiceImplementation, onStop: () => Promise<unknown> = async () => {}, readyFields: Record<string, unknown> = {}): void {
  const def = protoLoader.loadSync(new URL('./raw.proto', import.meta.url).pathname, { longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20 });
  server.addService(pkg.rawbench.Raw.service, handlers);
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(certFile), private_key: readFileSync(keyFile) }], false), (err, port) => {
    if (err) throw err;
    // The node's HTTP/2 windows (its config defaults), so the references are measured with the same
    // transport settings; BENCH_RAW_WINDOWS=default leaves grpc-js's 64 KiB.
    if (process.env.BENCH_RAW_WINDOWS !== 'default' && !widenServerWindows(server, configSchema.parse({}).grpc)) throw new Error('cannot set HTTP/2 windows');
    process.stdout.write(`${JSON.stringify({ event: 'ready', grpc: `127.0.0.1:${port}`, ...readyFields })}\n`);
  });
  process.on('SIGTERM', () => {
    server.forceShutdown();
    void onStop().finally(() => process.exit(0));
  });
}
