import { Alert, Button, Code, Group, List, Stack, Text, TextInput, Title } from "@mantine/core";
import { IconLogin } from "@tabler/icons-react";
import { type FormEvent, useState } from "react";

import type { AppConfig } from "../api/config";
import { useAppDispatch, useAppSelector } from "../app/hooks";
import { CopyValue } from "../components/CopyValue";
import { selectAuth } from "./authSlice";
import { tokenFromPasted } from "./devToken";
import { signIn, signInAgain, signInWithDevToken } from "./session";

const DEV_COMMAND = "mlplane token --role data_scientist --subject alice --url";

/** The command for the user who was signed in (same subject and roles), else the example. */
function devCommand(sub: string | undefined, roles: readonly string[] | undefined): string {
  if (!sub || !roles?.length || !/^[\w.@-]+$/.test(sub)) return DEV_COMMAND;
  return `mlplane token ${roles.map((r) => `--role ${r}`).join(" ")} --subject ${sub} --url`;
}

const PROBLEM_WORDS: Record<string, string> = {
  TOKEN_EXPIRED: "Your sign-in has expired.",
  TOKEN_MISSING: "You are not signed in.",
  TOKEN_MALFORMED: "The sign-in link was not a valid token.",
  OIDC_CALLBACK: "The sign-in with your identity provider did not complete.",
};

/**
 * How to sign in, and why the app is signed out (the server's message, its reason and
 * request id). Used as the signed-out page and, over the page the user was on, when a
 * session ends (so a half-filled form stays as it was).
 */
export function SignedOutPanel({ config, overPage = false }: { config: AppConfig | undefined; overPage?: boolean }) {
  const dispatch = useAppDispatch();
  const auth = useAppSelector(selectAuth);
  const [pasted, setPasted] = useState("");
  const [pasteError, setPasteError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const problem = auth.problem;
  const who = auth.claims?.sub;

  const onPaste = (event: FormEvent) => {
    event.preventDefault();
    const token = tokenFromPasted(pasted);
    if (!token) {
      setPasteError("Paste the whole URL that the command printed (it contains #token=…).");
      return;
    }
    setPasteError(null);
    signInWithDevToken(token, dispatch);
  };

  return (
    <Stack gap="md">
      {problem && (
        <Alert
          color="orange"
          variant="light"
          styles={{ title: { color: "var(--mantine-color-dark-8)" } }}
          title={PROBLEM_WORDS[problem.reason ?? ""] ?? "You have been signed out."} role="alert">
          <Stack gap={4}>
            <Text size="sm" style={{ overflowWrap: "anywhere" }}>
              {problem.message}
            </Text>
            <Group gap="lg">
              {problem.reason && (
                <Group gap={4} wrap="nowrap">
                  <Text size="xs" c="dimmed">
                    Reason
                  </Text>
                  <CopyValue value={problem.reason} label="reason code" size="xs" />
                </Group>
              )}
              {problem.requestId && (
                <Group gap={4} wrap="nowrap">
                  <Text size="xs" c="dimmed">
                    Request ID
                  </Text>
                  <CopyValue value={problem.requestId} label="request id" size="xs" />
                </Group>
              )}
            </Group>
          </Stack>
        </Alert>
      )}
      {overPage && (
        <Text size="sm">
          {who ? `You were signed in as ${who}. ` : ""}
          Sign in again to carry on: this page and what you typed stay as they are.
        </Text>
      )}
      {config?.oidc ? (
        <Group>
          <Button
            leftSection={<IconLogin size={18} aria-hidden />}
            loading={busy}
            onClick={() => {
              setBusy(true);
              const go = overPage ? signInAgain(config, dispatch) : signIn(config);
              void go.finally(() => {
                setBusy(false);
              });
            }}
          >
            {overPage ? "Sign in again" : "Sign in"}
          </Button>
        </Group>
      ) : config?.devSignIn ? (
        <Stack gap="sm">
          <Text size="sm">
            This mlplane runs its own development sign-in. In a terminal on the machine running it, mint a sign-in
            link for the user and role you want:
          </Text>
          <CopyValue value={devCommand(overPage ? who : undefined, auth.claims?.roles)} label="command" />
          <List size="sm" spacing={4}>
            <List.Item>
              Roles: <Code>data_scientist</Code> (upload, submit) or <Code>model_approver</Code> (review queue,
              approve, reject).
            </List.Item>
            <List.Item>Open the printed link in this browser tab. The link signs in this tab only, for an hour.</List.Item>
          </List>
          <form onSubmit={onPaste}>
            <Group align="flex-end" gap="xs" wrap="wrap">
              <TextInput
                label="Or paste the link here"
                placeholder="http://127.0.0.1:8080/#token=…"
                value={pasted}
                onChange={(e) => {
                  setPasted(e.currentTarget.value);
                }}
                error={pasteError}
                autoComplete="off"
                spellCheck={false}
                style={{ flex: "1 1 18rem" }}
              />
              <Button type="submit" variant="light">
                Sign in
              </Button>
            </Group>
          </form>
        </Stack>
      ) : (
        <Text size="sm">
          No way to sign in is configured on this server. Ask your administrator to configure an OpenID Connect issuer
          (or start the development stack with <Code>make up</Code>).
        </Text>
      )}
    </Stack>
  );
}

export function SignedOutPage({ config }: { config: AppConfig | undefined }) {
  return (
    <main>
      <Stack maw={640} mx="auto" px="md" py={48} gap="lg">
        <Group gap="xs">
          <img src="/favicon.svg" alt="" width={32} height={32} />
          <Text fw={700} size="xl">
            mlplane
          </Text>
        </Group>
        <Title order={1} size="h2">
          Sign in to mlplane
        </Title>
        <Text c="dimmed">The model registry and approvals of your predictive-maintenance platform.</Text>
        <SignedOutPanel config={config} />
      </Stack>
    </main>
  );
}

export default SignedOutPage;
