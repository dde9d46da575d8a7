// GET /config.json, served by the gateway without a token: how to sign in and the largest
// model the registry accepts. Not part of the gRPC contract: the gateway writes it.

export interface OidcSettings {
  authority: string;
  clientId: string;
  scope?: string;
}

export interface AppConfig {
  devSignIn: boolean;
  oidc: OidcSettings | null;
  maxModelBytes: number;
}

const DEFAULT_MAX_MODEL_BYTES = 1024 ** 3;

/** A config from whatever /config.json held, with safe defaults for what is missing. */
export function parseConfig(raw: unknown): AppConfig {
  const value = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {};
  const oidc = value.oidc;
  let parsedOidc: OidcSettings | null = null;
  if (typeof oidc === "object" && oidc !== null) {
    const o = oidc as Record<string, unknown>;
    if (typeof o.authority === "string" && typeof o.clientId === "string") {
      parsedOidc = {
        authority: o.authority,
        clientId: o.clientId,
        ...(typeof o.scope === "string" ? { scope: o.scope } : {}),
      };
    }
  }
  const max = value.maxModelBytes;
  return {
    devSignIn: value.devSignIn === true && parsedOidc === null,
    oidc: parsedOidc,
    maxModelBytes:
      typeof max === "number" && Number.isFinite(max) && max > 0 ? max : DEFAULT_MAX_MODEL_BYTES,
  };
}
