// An OpenPGP message that is small on the wire and huge once inflated: a compressed data packet
// (ZLIB) around a literal data packet of `inflatedBytes` zeros, built packet by packet (openpgp.js
// streams what it compresses, and a signing tool would need the whole payload in memory). A 512 MiB
// payload compresses to about 0.5 MB; nested: the compressed packet holds another compressed packet.
import { createDeflate } from 'node:zlib';

/** A new-format packet header with a five-octet length (RFC 9580 §4.2.1.3). */
function packetHeader(tag: number, length: number): Buffer {
  const header = Buffer.alloc(6);
  header[0] = 0xc0 | tag;
  header[1] = 0xff;
  header.writeUInt32BE(length, 2);
  return header;
}

async function deflate(parts: () => Iterable<Buffer>): Promise<Buffer> {
  const stream = createDeflate({ level: 9 });
  const out: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => out.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (const part of parts()) {
    if (!stream.write(part)) await new Promise((resolve) => stream.once('drain', resolve));
  }
  stream.end();
  await done;
  return Buffer.concat(out);
}

function compressedPacket(deflated: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([2]), deflated]); // algorithm 2: ZLIB
  return Buffer.concat([packetHeader(8, body.length), body]);
}

export async function compressionBomb(inflatedBytes: number, options: { nested?: boolean } = {}): Promise<Buffer> {
  const literalHeader = Buffer.concat([packetHeader(11, inflatedBytes + 6), Buffer.from([0x62, 0, 0, 0, 0, 0])]); // 'b', no name, date 0
  const zeros = Buffer.alloc(1024 * 1024);
  const inner = await deflate(function* () {
    yield literalHeader;
    for (let left = inflatedBytes; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
  });
  const packet = compressedPacket(inner);
  if (!options.nested) return packet;
  return compressedPacket(
    await deflate(function* () {
      yield packet;
    }),
  );
}
