import { render } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { createMemoryRouter, RouterProvider } from "react-router";

import type { AppConfig } from "../api/config";
import { Providers } from "../app/App";
import { routes } from "../app/routes";
import { makeStore } from "../app/store";
import { TOKEN_KEY } from "../auth/devToken";
import { devConfig, server } from "./server";
import { fakeToken } from "./tokens";

export interface AppOptions {
  /** Signed in with this token (dev sign-in kept in sessionStorage); null: signed out. */
  token?: string | null;
  roles?: string[];
  sub?: string;
  config?: AppConfig;
}

/** The whole app at `path`, as a browser would start it (config, then the session). */
export function renderApp(path: string, { token, roles, sub, config = devConfig }: AppOptions = {}) {
  server.use(http.get("*/config.json", () => HttpResponse.json(config)));
  const value = token === undefined ? fakeToken({ ...(roles ? { roles } : {}), ...(sub ? { sub } : {}) }) : token;
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  const store = makeStore();
  const router = createMemoryRouter(routes, { initialEntries: [path] });
  const view = render(
    <Providers store={store} env="test">
      <RouterProvider router={router} />
    </Providers>,
  );
  return { ...view, store, router };
}
