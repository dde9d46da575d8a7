import { Button, Center, Stack, Text, Title } from "@mantine/core";
import { lazy, Suspense, useEffect, useRef } from "react";
import { useNavigate } from "react-router";

import { useGetConfigQuery } from "../api/api";
import { asApiError } from "../api/errors";
import { selectAuth } from "../auth/authSlice";
import { consumeCapturedToken, takeTokenFromFragment } from "../auth/devToken";
import { signInWithDevToken, startSession } from "../auth/session";
import { ErrorAlert } from "../components/ErrorAlert";
import { PageLoader } from "../components/Loading";
import { AppLayout } from "./AppLayout";
import { useAppDispatch, useAppSelector } from "./hooks";

const SignedOutPage = lazy(() => import("../auth/SignedOut"));

/** Loads /config.json, starts the session, then shows the app or the sign-in page. */
export function RootLayout() {
  const config = useGetConfigQuery();
  const auth = useAppSelector(selectAuth);
  const dispatch = useAppDispatch();
  const navigate = useNavigate();
  const started = useRef(false);

  useEffect(() => {
    if (!config.data || started.current) return;
    started.current = true;
    void startSession(config.data, consumeCapturedToken(), dispatch, navigate);
  }, [config.data, dispatch, navigate]);

  // A sign-in URL opened in this tab while the app runs (same path: the browser only changes
  // the fragment, no reload): take the token out of the address and sign in over the page.
  const devSignIn = config.data?.devSignIn === true;
  useEffect(() => {
    if (!devSignIn) return;
    const onHashChange = () => {
      const token = takeTokenFromFragment(window);
      if (token) signInWithDevToken(token, dispatch);
    };
    window.addEventListener("hashchange", onHashChange);
    return () => {
      window.removeEventListener("hashchange", onHashChange);
    };
  }, [devSignIn, dispatch]);

  if (config.error) {
    return (
      <Center mih="100vh" p="md">
        <Stack maw={560} gap="md">
          <Title order={1} size="h3">
            mlplane cannot start
          </Title>
          <Text>The app could not read its settings (/config.json) from the server.</Text>
          <ErrorAlert error={asApiError(config.error)} context="config" />
          <Button
            variant="light"
            onClick={() => {
              void config.refetch();
            }}
          >
            Try again
          </Button>
        </Stack>
      </Center>
    );
  }
  if (!config.data || auth.status === "initializing") {
    return (
      <Center mih="100vh">
        <PageLoader label="Starting mlplane" />
      </Center>
    );
  }
  if (auth.status === "signedOut") {
    return (
      <Suspense fallback={<PageLoader label="Loading" />}>
        <SignedOutPage config={config.data} />
      </Suspense>
    );
  }
  return <AppLayout config={config.data} />;
}
