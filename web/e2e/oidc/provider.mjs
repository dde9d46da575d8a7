// A real OpenID Connect provider for the browser tests: npm `oidc-provider` (8.8.1, certified),
// started by tests/web/test_browser.py, never by the app. It listens on a free port and
// prints one JSON line with its issuer and JWKS URL; the test then starts a stack whose
// gateway and services trust it, and writes that gateway's origin as one JSON line to this
// process's stdin ({"gateway": "http://127.0.0.1:PORT"}). Only then is the app's client
// registered (its redirect URIs are on the gateway's origin), and the line {"ready": true}
// is printed. Until then the JWKS is already served (Envoy fetches it when it starts).
//
// The client is public (`mlplane-web`, no secret, PKCE), with the app's redirect URIs
// (src/auth/oidcPaths.ts): /auth/callback and /auth/silent. Sign-in is oidc-provider's own
// development login form (any login name, any password). Access tokens are JWTs (RS256,
// `typ: at+jwt`) for the resource `urn:mlplane:api` with the audience `mlplane`, carrying
// the `tenant` and `roles` claims mlplane reads:
//   alice, erin → data_scientist; bob → model_approver; anyone else → data_scientist.
// Access tokens live 10 minutes, except erin's: 10 seconds (the expiry tests).
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import process from "node:process";
import { createInterface } from "node:readline";

import Provider, { errors } from "oidc-provider";

const CLIENT_ID = "mlplane-web";
const RESOURCE = "urn:mlplane:api";
const AUDIENCE = "mlplane";
const TENANT = "demo";
const SHORT_LIVED_LOGIN = "erin";
const SHORT_TTL_SECONDS = 10;
const TTL_SECONDS = 600;

const ROLES = { alice: ["data_scientist"], erin: ["data_scientist"], bob: ["model_approver"] };

function rolesOf(login) {
  return ROLES[login] ?? ["data_scientist"];
}

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const kid = `e2e-${randomBytes(6).toString("hex")}`;
const privateJwk = { ...privateKey.export({ format: "jwk" }), kid, use: "sig", alg: "RS256" };
const publicJwk = { kty: privateJwk.kty, n: privateJwk.n, e: privateJwk.e, kid, use: "sig", alg: "RS256" };

let provider = null;

const server = createServer((req, res) => {
  if (provider) {
    provider.callback()(req, res);
    return;
  }
  if (req.url === "/jwks") {
    res.writeHead(200, { "content-type": "application/jwk-set+json" });
    res.end(JSON.stringify({ keys: [publicJwk] }));
    return;
  }
  res.writeHead(503, { "content-type": "text/plain" });
  res.end("the provider waits for its client's gateway origin\n");
});

function makeProvider(issuer, gateway) {
  const configuration = {
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: "none",
        application_type: "web",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        redirect_uris: [`${gateway}/auth/callback`, `${gateway}/auth/silent`],
        post_logout_redirect_uris: [`${gateway}/`],
      },
    ],
    jwks: { keys: [privateJwk] },
    cookies: { keys: [randomBytes(32).toString("hex")] },
    pkce: { required: () => true },
    // The app's origin may call the token endpoint from the browser.
    clientBasedCORS: (_ctx, origin) => origin === gateway,
    findAccount: (_ctx, sub) => ({
      accountId: sub,
      claims: () => ({ sub, name: sub, preferred_username: sub }),
    }),
    claims: { openid: ["sub"], profile: ["name", "preferred_username"] },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: "mlplane",
            audience: AUDIENCE,
            accessTokenFormat: "jwt",
            jwt: { sign: { alg: "RS256" } },
          };
        },
      },
    },
    extraTokenClaims: (_ctx, token) => ({ tenant: TENANT, roles: rolesOf(token.accountId) }),
    ttl: {
      AccessToken: (_ctx, token) => (token.accountId === SHORT_LIVED_LOGIN ? SHORT_TTL_SECONDS : TTL_SECONDS),
      IdToken: TTL_SECONDS,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    // A first-party app: no consent page; the grant covers openid and the API.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope("openid profile");
      grant.addResourceScope(RESOURCE, "mlplane");
      await grant.save();
      return grant;
    },
  };
  const made = new Provider(issuer, configuration);
  made.on("server_error", (_ctx, error) => {
    process.stderr.write(`oidc-provider server_error: ${String(error?.stack ?? error)}\n`);
  });
  for (const event of ["grant.error", "authorization.error", "end_session.error"]) {
    made.on(event, (_ctx, error) => {
      process.stderr.write(`oidc-provider ${event}: ${String(error?.message)} ${String(error?.error_description ?? "")}\n`);
    });
  }
  return made;
}

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  process.stdout.write(`${JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks`, client_id: CLIENT_ID })}\n`);
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const { gateway } = JSON.parse(line);
    provider = makeProvider(issuer, gateway.replace(/\/$/, ""));
    process.stdout.write(`${JSON.stringify({ ready: true, gateway })}\n`);
  });
  // The test closes stdin or signals the process when it is done.
  lines.on("close", () => {
    server.close();
    process.exit(0);
  });
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
