// Raw grpc-js server (TLS, same message limits and windows as the node, no storage, no crypto), run as
// its own process by bench/suites/mailbox.ts: raw-server.ts CERT KEY.
import { serveRaw } from './raw-serve.ts';

const [certFile, keyFile] = process.argv.slice(2) as [string, string];
serveRaw(certFile, keyFile, {
  Unary: (call: any, cb: any) => cb(null, { ref: call.request.ref }),
  Bidi: (call: any) => {
    call.on('data', (b: any) => call.write({ ref: b.ref }));
    call.on('end', () => call.end());
  },
});
