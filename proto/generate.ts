// Regenerates proto/gen/ (typed TypeScript for aftersmtp.v1) from proto/aftersmtp.proto.
// CI runs this and fails when the committed output differs (see .ci/run).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const outDir = join(root, 'proto', 'gen');
rmSync(outDir, { recursive: true, force: true });
execFileSync(
  join(root, 'node_modules', '.bin', 'proto-loader-gen-types'),
  [
    'aftersmtp.proto', '--longs=Number', '--enums=String', '--bytes=Buffer', '--defaults', '--arrays', '--oneofs',
    '--grpcLib=@grpc/grpc-js', '--includeComments', '--importFileExtension=.ts',
    `--outDir=${outDir}`, '--includeDirs', 'proto',
  ],
  // Relative paths: the generated headers name the .proto file, and must not depend on the checkout path.
  { stdio: 'inherit', cwd: root },
);

