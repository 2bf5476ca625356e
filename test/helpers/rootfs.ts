// Images that container engines accept, not only registries: layers are real tar files and the
// config's `rootfs.diff_ids` are the digests of the uncompressed tars (docker and podman check
// them on pull; oci-layout.ts's makeImage uses random ones, which only skopeo copy tolerates).
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { blobOf, imageOf, OCI_LAYER, sha256, tarOf, type Files, type Image } from './oci-layout.js';

export { tarOf, type Files } from './oci-layout.js';

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
