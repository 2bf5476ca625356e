// Images that container engines accept, not only registries: layers are real tar files and the
// config's `rootfs.diff_ids` are the digests of the uncompressed tars (docker and podman check
// them on pull; oci-layout.ts's makeImage uses random ones, which only skopeo copy tolerates).
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { blobOf, imageOf, OCI_LAYER, sha256, type Image } from './oci-layout.js';

/** Files of a layer (or of a `docker import` / `podman import` tarball): path → content. */
export type Files = Record<string, Buffer>;

function tarHeader(name: string, size: number, mtime: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const header = Buffer.alloc(512);
  header.write(name, 0, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(size.toString(8).padStart(11, '0') + '\0', 124);
  header.write(mtime.toString(8).padStart(11, '0') + '\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return header;
}

/** An uncompressed ustar archive of regular files at the top level. */
export function tarOf(files: Files): Buffer {
  const mtime = Math.floor(Date.now() / 1000);
  const parts: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    parts.push(tarHeader(name, content.length, mtime), content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Random files, named after the test so a failure shows whose they are. */
export function randomFiles(prefix: string, count = 1, bytes = 2048): Files {
  const files: Files = {};
  for (let i = 0; i < count; i++) files[`${prefix}-${i}-${randomBytes(3).toString('hex')}`] = randomBytes(bytes);
  return files;
}

/** The platform of this machine, as OCI names it, so engines pull without a platform warning. */
export function hostPlatform(): { os: string; architecture: string } {
  const architectures: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', s390x: 's390x', ppc64: 'ppc64le' };
  return { os: 'linux', architecture: architectures[process.arch] ?? process.arch };
}

/** An OCI image with one gzipped layer per entry of `layers`, for the host's platform. */
export function makeRootfsImage(layers: Files[]): Image {
  const platform = hostPlatform();
  const tars = layers.map((files) => tarOf(files));
  const blobs = tars.map((tar) => blobOf(gzipSync(tar), OCI_LAYER));
  const created = new Date().toISOString();
  return imageOf(
    {
      ...platform,
      created,
      config: { Cmd: ['/nonexistent'] },
      rootfs: { type: 'layers', diff_ids: tars.map((tar) => sha256(tar)) },
      history: tars.map(() => ({ created, created_by: 'signet e2e test' })),
    },
    blobs,
    platform,
  );
}
