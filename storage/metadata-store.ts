// The metadata seam: repositories, blob links, manifests, tags and upload sessions. One
// implementation (PostgreSQL SQL, run by `pg` or PGlite) plus an in-memory cache in front; every
// implementation runs test/conformance/metadata-store.ts.
import type { UploadChunk } from './blobs.js';

/** Tag names in byte order (COLLATE "C"; tag names are ASCII, where `<` agrees), sorted if not. */
export function inOrder(names: string[]): string[] {
  for (let i = 1; i < names.length; i++) {
    if (!(names[i - 1]! < names[i]!)) return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
  return names;
}

export interface Page {
  /** Return names strictly after this one. */
  last?: string;
  limit: number;
}

export interface RepositoryPage extends Page {
  /** Only repositories of this project (`project` itself or `project/...`). */
  project?: string;
}

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  content: Buffer;
  size: number;
  artifactType?: string;
  subject?: string;
  annotations?: Record<string, string>;
}

/** What a manifest's descriptor names: a blob or a child manifest, at the size it declares. */
export interface ManifestReference {
  digest: string;
  kind: 'blob' | 'manifest';
  size: number;
}

export interface Referrer {
  digest: string;
  mediaType: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ReferrerPage {
  /** Only referrers of this artifact type. */
  artifactType?: string;
  /** The last digest of the previous page. */
  after?: string;
  limit: number;
  /**
   * With annotations, and at most this many bytes of them on the page (one referrer always fits,
   * so the listing moves on); without it, no annotations.
   */
  annotationBytes?: number;
}

export interface ReferrerList {
  referrers: Referrer[];
  /** The cursor of the next page (the last digest on this one), when more follow. */
  next?: string;
}

export interface UploadRecord {
  id: string;
  repository: string;
  size: number;
  chunks: UploadChunk[];
  createdAt: Date;
}

export interface RepositoryMetadata {
  exists(name: string): Promise<boolean>;
  /** Repositories holding at least one manifest, in lexical order. */
  list(page: RepositoryPage): Promise<string[]>;
  /**
   * Removes a project's repositories that hold no manifest, with their blob links and tags (the
   * blobs are left to garbage collection); the names removed. What a deleted project leaves must
   * not be readable by the next project of its name.
   */
  removeEmpty(project: string): Promise<string[]>;
}

export interface LinkOptions {
  place?: () => Promise<void>;
  endUpload?: string;
}

export interface BlobLinks {
  /** The blob's size when it is linked into the repository. */
  find(repository: string, digest: string): Promise<number | undefined>;
  /** Sizes of those of `digests` linked into the repository. */
  findMany(repository: string, digests: string[]): Promise<Map<string, number>>;
  /**
   * Links the blob into the repository. `place` (putting the bytes into the blob store) runs
   * inside the same critical section, which garbage collection of that digest also takes.
   * `endUpload` ends that upload session in the same step as the link, so a session lives until
   * its blob is linked, and no longer.
   */
  save(repository: string, digest: string, size: number, options?: LinkOptions): Promise<void>;
  remove(repository: string, digest: string): Promise<boolean>;
}

export interface ManifestSaveOptions {
  /**
   * A mirror's pull-through copy: its blobs are fetched from the upstream when first asked for,
   * so they need not be present yet (the references are recorded all the same; child manifests
   * must be present, as always).
   */
  blobsPending?: boolean;
}

export interface ManifestMetadata {
  find(repository: string, digest: string): Promise<ManifestRecord | undefined>;
  /** The manifest a tag points at, in one statement (a pull by tag that misses the cache). */
  findByTag(repository: string, tag: string): Promise<ManifestRecord | undefined>;
  /** Sizes of those of `digests` stored in the repository. */
  findMany(repository: string, digests: string[]): Promise<Map<string, number>>;
  /**
   * Stores the manifest (idempotent) and, with a tag, points the tag at it: one transaction. Every
   * reference must be in this repository (a blob linked here, a manifest stored here) at the size
   * it declares, or nothing is written and ManifestReferenceError names the first that is not.
   */
  save(
    repository: string,
    manifest: ManifestRecord,
    references: ManifestReference[],
    tag?: string,
    options?: ManifestSaveOptions,
  ): Promise<void>;
  /**
   * Removes the manifest and every tag pointing at it, and cosign's tags for it in the repository
   * (`sha256-<hex>.sig`, `.att`, `.sbom`), whose manifests stay, untagged.
   */
  remove(repository: string, digest: string): Promise<boolean>;
  /**
   * One page of the manifests here whose subject is `subject`, in digest order: bounded in count
   * and, when annotations are asked for, in their bytes, since each manifest may carry up to its
   * 4 MiB in annotations and a listing must not hold them all at once.
   */
  referrers(repository: string, subject: string, page: ReferrerPage): Promise<ReferrerList>;
  /** Digests of the indexes in the repository that list this manifest. */
  parents(repository: string, digest: string): Promise<string[]>;
  /**
   * Which of these digests have any signature in the repository: a simple signature, a cosign
   * `sha256-<hex>.sig` tag, or a referrer of `cosignArtifactType`. What the pull gate judges first.
   */
  signedAmong(repository: string, digests: string[], cosignArtifactType: string): Promise<Set<string>>;
}

export interface TagRecord {
  name: string;
  digest: string;
  /** When the tag was last pushed (pointed at its digest). */
  updatedAt: Date;
}

/** Tag names as the text of a JSON array, made by the database (TagMetadata.listJson). */
export interface TagListJson {
  /** How many names `json` holds. */
  count: number;
  /** The names in byte order: `["a","b"]`. */
  json: string;
}

export interface TagMetadata {
  /** The digest the tag points at. */
  find(repository: string, tag: string): Promise<string | undefined>;
  /** `undefined` when the repository does not exist. */
  list(repository: string, page: Page): Promise<string[] | undefined>;
  /**
   * The first `max` + 1 tag names (so more than `max` tells there are more), as JSON text: a whole
   * tag list answer without a JavaScript string per name. `undefined` when the repository does
   * not exist.
   */
  listJson(repository: string, max: number): Promise<TagListJson | undefined>;
  /** A page of tags with the digest each names and when it was last pointed there; one query. */
  listDetailed(repository: string, page: Page): Promise<TagRecord[] | undefined>;
  remove(repository: string, tag: string): Promise<boolean>;
}

export interface UploadMetadata {
  create(id: string, repository: string): Promise<void>;
  find(id: string): Promise<UploadRecord | undefined>;
  /** Appends a chunk when the upload is still at `chunk.offset`; false when another write won. */
  addChunk(id: string, chunk: UploadChunk): Promise<boolean>;
  /**
   * The upload of `repository`, for its commit, marked as just used (so that garbage collection,
   * which removes sessions by their age, leaves it alone). It stays until the commit links its
   * blob (BlobLinks.save with `endUpload`): a commit cut off by a crash can be asked again.
   * `undefined` when there is no such upload (in that repository).
   */
  claim(id: string, repository: string): Promise<UploadRecord | undefined>;
  remove(id: string): Promise<boolean>;
}

export interface MetadataStore {
  repositories: RepositoryMetadata;
  blobs: BlobLinks;
  manifests: ManifestMetadata;
  tags: TagMetadata;
  uploads: UploadMetadata;
  close(): Promise<void>;
}
