// Unsigned JWT-shaped tokens: the app reads claims, only the server verifies signatures.
function b64url(value: object): string {
  return btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fakeToken({
  sub = "alice",
  tenant = "demo",
  roles = ["data_scientist"],
  expiresIn = 3600,
}: { sub?: string; tenant?: string; roles?: string[]; expiresIn?: number } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return `${b64url({ alg: "RS256", typ: "JWT" })}.${b64url({ sub, tenant, roles, exp: now + expiresIn, iss: "https://mlplane.invalid/dev-issuer", aud: "mlplane" })}.c2ln`;
}
