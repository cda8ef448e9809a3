// A real OpenID provider for the single sign-on tests (issue #27): the npm `oidc-provider`
// (pinned in tests/e2e/setup.sh), with its development login and consent pages, on
// 127.0.0.1 and a free port. Any login name signs in; its claims are `sub` = the name,
// `email` = the name if it has an `@`, else name@example.com (verified), `preferred_username` and `groups` (["llm-admins"]
// for names starting with "admin", else ["staff"]) — in the ID token itself.
//
// Usage: node oidc_provider.mjs CONFIG_JSON, where CONFIG_JSON has
//   clients         [{client_id, client_secret, redirect_uris}]
//   other_audience  client ids whose ID tokens the provider issues for another client
//                   instead (signed with its own key, audience "someone-else"): a
//                   token meant for a different relying party
//   clock_offset    seconds added to this process's clock (negative: it runs behind,
//                   so its ID tokens are already expired when they arrive)
//   id_token_ttl    seconds an ID token is valid (default 3600)
//   tokens_file     every ID token issued is appended here (the tests look for them in
//                   the proxy's logs and pages)
// Prints {"issuer": "http://127.0.0.1:PORT"} once listening; runs until killed.

import { createServer } from "node:http";
import { appendFileSync } from "node:fs";
import { randomBytes } from "node:crypto";

const cfg = JSON.parse(process.argv[2]);
const offsetMs = (cfg.clock_offset || 0) * 1000;
if (offsetMs) {
  const realNow = Date.now;
  Date.now = () => realNow() + offsetMs;
}
const { default: Provider } = await import("oidc-provider");
const jose = await import("jose");

const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: "test-key", alg: "RS256", use: "sig" };
const otherAudience = new Set(cfg.other_audience || []);

const server = createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: cfg.clients.map((c) => ({ ...c, grant_types: ["authorization_code"], response_types: ["code"] })),
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["preferred_username", "groups"],
  },
  // The claims in the ID token, not only at the userinfo endpoint.
  conformIdTokenClaims: false,
  ttl: { IdToken: cfg.id_token_ttl || 3600 },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: id.includes("@") ? id : `${id}@example.com`,
          email_verified: true,
          preferred_username: id.split("@")[0],
          groups: id.startsWith("admin") ? ["llm-admins"] : ["staff"],
        };
      },
    };
  },
});

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== "/token" || ctx.status !== 200 || !ctx.body || !ctx.body.id_token) {
    return;
  }
  const client = ctx.oidc && ctx.oidc.client && ctx.oidc.client.clientId;
  if (otherAudience.has(client)) {
    const claims = jose.decodeJwt(ctx.body.id_token);
    const key = await jose.importJWK(jwk, "RS256");
    ctx.body = {
      ...ctx.body,
      id_token: await new jose.SignJWT({ ...claims, aud: "someone-else", azp: "someone-else" })
        .setProtectedHeader({ alg: "RS256", kid: jwk.kid, typ: "JWT" })
        .sign(key),
    };
  }
  if (cfg.tokens_file) {
    appendFileSync(cfg.tokens_file, ctx.body.id_token + "\n");
  }
});

server.on("request", provider.callback());
console.log(JSON.stringify({ issuer }));
