// Read an exported model's metadata_props (rnn_config, vocab, labels, normalisation) in Node.js, with no
// dependencies: onnxruntime-node (like onnxruntime-web) does not expose custom metadata, so this walks the
// ONNX protobuf directly. ModelProto field 14 is `repeated StringStringEntryProto metadata_props`
// (key = 1, value = 2); every other field is skipped by its wire type.
//
//   node examples/onnx_metadata.mjs model.onnx            -> prints {"rnn_config": "...", "vocab": "...", ...}
//   import { readMetadata } from "./onnx_metadata.mjs";   -> readMetadata(fs.readFileSync("model.onnx"))
//   const config = JSON.parse(readMetadata(buf).rnn_config);   // each value is itself a JSON string
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

function varint(buf, pos) {
  let value = 0, scale = 1, byte;
  do {
    if (pos >= buf.length) throw new Error("truncated varint");
    byte = buf[pos++];
    value += (byte & 0x7f) * scale; // multiplication, not <<: lengths may exceed 2^31
    scale *= 128;
  } while (byte & 0x80);
  return [value, pos];
}

// Yields [fieldNumber, wireType, value] of one message; value is a Buffer for length-delimited fields.
function* fields(buf) {
  let pos = 0;
  while (pos < buf.length) {
    let key, n;
    [key, pos] = varint(buf, pos);
    const field = Math.floor(key / 8), wire = key & 7;
    if (wire === 0) { [n, pos] = varint(buf, pos); yield [field, wire, n]; }
    else if (wire === 1) { pos += 8; }
    else if (wire === 5) { pos += 4; }
    else if (wire === 2) {
      [n, pos] = varint(buf, pos);
      if (pos + n > buf.length) throw new Error("truncated field");
      yield [field, wire, buf.subarray(pos, pos + n)];
      pos += n;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
}

export function readMetadata(buf) {
  const props = {};
  for (const [field, wire, value] of fields(buf)) {
    if (field !== 14 || wire !== 2) continue;
    let key = "", val = "";
    for (const [f, w, v] of fields(value)) {
      if (w !== 2) continue;
      if (f === 1) key = v.toString("utf8");
      else if (f === 2) val = v.toString("utf8");
    }
    props[key] = val;
  }
  return props;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(JSON.stringify(readMetadata(readFileSync(process.argv[2]))) + "\n");
}
