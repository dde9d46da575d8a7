import "@mantine/core/styles.css";
import "@mantine/notifications/styles.css";

import { MantineProvider } from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { useState } from "react";
import { Provider } from "react-redux";
import { createBrowserRouter, RouterProvider } from "react-router";

import { routes } from "./routes";
import { type AppStore, makeStore } from "./store";
import { cssVariablesResolver, theme } from "./theme";

export function Providers({
  store,
  children,
  env = "default",
}: {
  store: AppStore;
  children: React.ReactNode;
  /** "test": no transitions and no portals (unit tests). */
  env?: "default" | "test";
}) {
  return (
    <Provider store={store}>
      <MantineProvider theme={theme} cssVariablesResolver={cssVariablesResolver} defaultColorScheme="light" env={env}>
        <Notifications position="bottom-right" />
        {children}
      </MantineProvider>
    </Provider>
  );
}

export function App() {
  const [store] = useState(makeStore);
  const [router] = useState(() => createBrowserRouter(routes));
  return (
    <Providers store={store}>
      <RouterProvider router={router} />
    </Providers>
  );
}
