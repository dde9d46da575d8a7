// The claims the app shows (who is signed in, the tenant, the roles) and uses (expiry, the
// roles that decide the navigation). The token is not verified here: the gateway and the
// services verify it on every call; the browser only reads it.

export const ROLE_DATA_SCIENTIST = "data_scientist";
export const ROLE_MODEL_APPROVER = "model_approver";

export interface Claims {
  sub: string;
  tenant: string;
  roles: string[];
  /** Expiry, seconds since the epoch; undefined when the token has none. */
  exp?: number;
  iss?: string;
}

function base64UrlDecode(part: string): string {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The claims of a JWT, or null when it is not one. */
export function decodeClaims(token: string): Claims | null {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return null;
  let payload: unknown;
  try {
    payload = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    return null;
  }
  if (typeof payload !== "object" || payload === null) return null;
  const p = payload as Record<string, unknown>;
  const roles = Array.isArray(p.roles)
    ? p.roles.filter((r): r is string => typeof r === "string")
    : typeof p.roles === "string"
      ? p.roles.split(/[\s,]+/).filter(Boolean)
      : [];
  return {
    sub: typeof p.sub === "string" ? p.sub : "",
    tenant: typeof p.tenant === "string" ? p.tenant : "",
    roles,
    ...(typeof p.exp === "number" ? { exp: p.exp } : {}),
    ...(typeof p.iss === "string" ? { iss: p.iss } : {}),
  };
}

/** True when the token's `exp` is at or before `now` plus `marginSeconds`. */
export function isExpired(claims: Claims, now = Date.now(), marginSeconds = 0): boolean {
  return claims.exp !== undefined && claims.exp * 1000 <= now + marginSeconds * 1000;
}
