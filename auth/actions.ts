// What a request asks to do; the authorizer and token grants speak of these.
export type Action =
  | 'pull' // read manifests, blobs, tags, signatures
  | 'push' // upload blobs and manifests
  | 'delete' // delete manifests, tags, blobs
  | 'sign' // write and delete signatures
  | 'view' // see a project's members (members only, public or not)
  | 'admin' // change project settings and members
  | 'create' // create a project
  | 'maintain'; // registry-wide maintenance (garbage collection): registry admins only
