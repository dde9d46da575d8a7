// The OIDC redirect targets, apart from the (lazily loaded) OIDC module.
export const CALLBACK_PATH = "/auth/callback";
export const SILENT_CALLBACK_PATH = "/auth/silent";
