import { Button, Code, Stack, Text, Title } from "@mantine/core";
import { IconMapOff } from "@tabler/icons-react";
import { Link, useLocation, useRouteError } from "react-router";

import { EmptyState } from "../components/EmptyState";
import { PageHeader } from "../components/PageHeader";

export function NotFoundPage() {
  const location = useLocation();
  return (
    <>
      <PageHeader title="Page not found" docTitle="Not found" />
      <EmptyState
        icon={<IconMapOff size={26} />}
        title="There is no page here"
        action={
          <Button component={Link} to="/models" variant="light">
            Go to the models
          </Button>
        }
      >
        Nothing lives at <Code>{location.pathname}</Code>. The link may be old or mistyped.
      </EmptyState>
    </>
  );
}

export function RouteError() {
  const error = useRouteError();
  return (
    <Stack maw={640} mx="auto" p="xl" gap="md">
      <Title order={1} size="h3">
        Something went wrong on this page
      </Title>
      <Text>Reload the page to try again. If it happens again, tell your administrator what you were doing.</Text>
      <Code block>{error instanceof Error ? error.message : String(error)}</Code>
      <Button
        onClick={() => {
          window.location.reload();
        }}
      >
        Reload
      </Button>
    </Stack>
  );
}
