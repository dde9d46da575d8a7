// Where the stacks are: tests/web/test_browser.py starts them and names them in WEB_E2E_*
// variables. A missing variable fails the test that needs it, with what to do.
function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run the browser tests through pytest (.venv/bin/python -m pytest tests/web), which starts the stacks`,
    );
  }
  return value.replace(/\/$/, "");
}

export const env = {
  /** The dev stack's gateway (the app and the API), e.g. http://127.0.0.1:40123. */
  get gateway(): string {
    return required("WEB_E2E_GATEWAY");
  },
  /** The dev stack's state folder: `mlplane token` mints with its keys. */
  get stateDir(): string {
    return required("WEB_E2E_STATE_DIR");
  },
  /** The dev stack's folder object store. */
  get storeDir(): string {
    return required("WEB_E2E_STORE_DIR");
  },
  /** The `mlplane` command (.venv/bin/mlplane). */
  get mlplane(): string {
    return required("WEB_E2E_MLPLANE");
  },
  /** model.onnx (valid), pickle.onnx and model.pkl (a pickle). */
  get files(): string {
    return required("WEB_E2E_FILES");
  },
  /** Where each page's screenshot goes; none are taken when unset. */
  get screenshots(): string | undefined {
    return process.env.WEB_E2E_SCREENSHOTS || undefined;
  },
  /** The stack that trusts the OpenID provider. */
  get oidcGateway(): string {
    return required("WEB_E2E_OIDC_GATEWAY");
  },
  get oidcIssuer(): string {
    return required("WEB_E2E_OIDC_ISSUER");
  },
};
