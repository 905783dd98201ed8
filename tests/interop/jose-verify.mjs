// Checks the registry's signatures with panva/jose, a JOSE implementation
// that shares no code with the service. Reads {"jwks": {...}, "items":
// [{"jws": "...", "typ": "..."}]} on stdin and prints, for each item, the
// verified protected header and payload, or the error that jose raised.
import { compactVerify, createLocalJWKSet, calculateJwkThumbprint } from "jose";

const input = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
}));

const keySet = createLocalJWKSet(input.jwks);
const thumbprints = {};
for (const jwk of input.jwks.keys) {
  thumbprints[jwk.kid] = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }, "sha256");
}

const results = [];
for (const item of input.items) {
  try {
    const { payload, protectedHeader } = await compactVerify(item.jws, keySet, { algorithms: ["Ed25519"] });
    if (protectedHeader.typ !== item.typ) throw new Error(`typ ${protectedHeader.typ}`);
    results.push({ ok: true, header: protectedHeader, payload: JSON.parse(new TextDecoder().decode(payload)) });
  } catch (error) {
    results.push({ ok: false, error: `${error.code || error.name}: ${error.message}` });
  }
}
process.stdout.write(JSON.stringify({ thumbprints, results }));
