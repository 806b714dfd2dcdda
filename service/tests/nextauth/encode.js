// Mint NextAuth v4 session tokens with next-auth's own encode() (jwt/index.js).
// stdin: a JSON list of {"token": {...claims}, "maxAge": seconds}; the secret comes from the
// NEXTAUTH_SECRET environment variable (never a command-line argument).
// stdout: a JSON list of tokens, in the same order.
"use strict";
const { encode } = require("next-auth/jwt");

async function main() {
  const secret = process.env.NEXTAUTH_SECRET;
  if (!secret) throw new Error("NEXTAUTH_SECRET is not set");
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const tokens = [];
  for (const item of JSON.parse(input)) {
    tokens.push(await encode({ token: item.token, secret, maxAge: item.maxAge }));
  }
  process.stdout.write(JSON.stringify(tokens));
}

main().catch((err) => {
  process.stderr.write(`encode.js: ${err.message}\n`);
  process.exit(1);
});
