// Runs Rekognition operations with the AWS SDK for JavaScript v3, one request per input line.
//
// Input (stdin), one JSON object a line: {"operation": "DetectFaces", "params": {...}}; an image
// member given as {"Bytes": {"$file": "/path"}} is read from that file. Output (stdout), one line
// per request: {"ok": <response>} or {"error": <the SDK's error name>, "message": ...}.
// Usage: node driver.mjs <endpoint> (tests/integration/test_serve_clients.py runs it).
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import * as sdk from "@aws-sdk/client-rekognition";

const client = new sdk.RekognitionClient({
  endpoint: process.argv[2],
  region: "us-east-1",
  credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  maxAttempts: 1, // an error is reported, never retried away
});

function withFiles(value) {
  if (Array.isArray(value)) return value.map(withFiles);
  if (value && typeof value === "object") {
    if (typeof value.$file === "string") return new Uint8Array(readFileSync(value.$file));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withFiles(v)]));
  }
  return value;
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { operation, params } = JSON.parse(line);
  const Command = sdk[`${operation}Command`];
  let answer;
  try {
    const { $metadata, ...response } = await client.send(new Command(withFiles(params)));
    answer = { ok: response, status: $metadata.httpStatusCode };
  } catch (err) {
    answer = { error: err.name, message: err.message, status: err.$metadata?.httpStatusCode };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
